"""``wear``: the data team's one command (typer + rich) over the pipeline's Kafka topics and PostgreSQL.

Every subcommand has ``--help`` with an example, ``--json`` for scripts, a progress bar on long jobs,
and the exit codes of :mod:`wear.common`: 0 done, 1 a system failure (one line), 2 bad usage or input.
See ``docs/cli.md``. A tool on top of the stages: it may import ``schemas``, ``infra`` and any stage; nothing
imports it.
"""
