"""``wear topics create | check``: the pipeline's Kafka topics against their registry (``schemas/topics.py``).

``create`` makes the missing ones (``infra.topic_admin.ensure_topics``, as ``python -m deploy topics``
does) and ``check`` only looks; both compare every existing topic with its declaration: partitions,
replication factor, cleanup policy, retention, min.insync.replicas. An existing topic is never
changed: a partition count change re-shuffles keys, a cleanup policy change can delete data.

Exit codes: 0 every topic present as declared; 1 a topic missing (``check``) or drifted, one line per
problem on stderr, or Kafka unreachable (one line); 2 bad usage (a ``--topic`` not in the registry, a
``--prefix`` Kafka would refuse). A missing or drifted topic is a failure of the system's set-up, not
of the command line: hence 1, like Kafka being away.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any

import typer

from infra.settings import KafkaSettings
from infra.topic_admin import TopicReport, ensure_topics
from projections.commands import configure_logging, say
from schemas.topics import TOPICS, TopicSpec
from wear.common import EXIT_FAILED, STDERR, STDOUT, JsonOption, print_json, run, usage

__all__ = ["problems", "register", "report_document", "selected"]

_LEGAL = re.compile(r"^[A-Za-z0-9._-]*$")

TopicOption = Annotated[
    list[str] | None,
    typer.Option(
        "--topic",
        metavar="NAME",
        help="Only this registry topic (repeatable); default: every topic and its .dlq twin.",
    ),
]
PrefixOption = Annotated[
    str,
    typer.Option(
        "--prefix",
        metavar="TEXT",
        help="Prepend TEXT to every name: a namespace on a shared cluster (staging, tests).",
    ),
]


def selected(names: list[str] | None, prefix: str) -> list[TopicSpec]:
    """The registry's specs named by ``names`` (all when none), renamed with ``prefix``; Usage (exit 2)
    on a name outside the registry or a prefix Kafka would refuse."""
    if not _LEGAL.match(prefix) or len(prefix) > 100:
        usage(f"bad --prefix {prefix[:40]!r}: use letters, digits, '.', '_' and '-' (at most 100)")
    known = {spec.name: spec for spec in TOPICS}
    specs = []
    for name in names or list(known):
        if name not in known:
            usage(f"unknown topic {name[:80]!r}: the registry has {', '.join(known)}")
        specs.append(known[name])
    return [replace(spec, name=prefix + spec.name) for spec in specs]


def problems(report: TopicReport) -> list[str]:
    """One line per missing or drifted topic setting (pure)."""
    lines = [f"missing {name}: run `wear topics create`" for name in report.missing]
    lines += [
        f"drift {d.topic}: {d.setting} is {d.actual}, the registry says {d.expected}" for d in report.drifts
    ]
    return lines


def report_document(report: TopicReport) -> dict[str, Any]:
    """The JSON document of ``wear topics create|check --json`` (pure)."""
    return {
        "ok": report.ok,
        "created": list(report.created),
        "present": list(report.unchanged),
        "missing": list(report.missing),
        "drifts": [
            {"topic": d.topic, "setting": d.setting, "expected": d.expected, "actual": d.actual}
            for d in report.drifts
        ],
    }


async def _ensured(names: list[str] | None, prefix: str, *, create: bool) -> TopicReport:
    return await ensure_topics(KafkaSettings(), selected(names, prefix), create=create)


def _finish(report: TopicReport, as_json: bool) -> None:
    for line in problems(report):
        say(STDERR, line)
    if as_json:
        print_json(report_document(report))
    else:
        for name in report.created:
            say(STDOUT, f"created {name}")
        say(
            STDOUT,
            f"{len(report.created) + len(report.unchanged)} topic(s) present: {len(report.created)} created, "
            f"{len(report.missing)} missing, {len(report.drifts)} setting(s) drifted",
        )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def create(topic: TopicOption = None, prefix: PrefixOption = "", as_json: JsonOption = False) -> None:
    """Create the pipeline's missing topics; report the ones that drifted.

    An existing topic is never changed: a drift is a line on stderr and
    exit 1, for a human to decide.

    Example:

        $ wear topics create --json
    """
    configure_logging()
    _finish(run(_ensured(topic, prefix, create=True)), as_json)


def check(topic: TopicOption = None, prefix: PrefixOption = "", as_json: JsonOption = False) -> None:
    """Check that the pipeline's topics exist as the registry declares them.

    Partitions, replication factor, cleanup policy, retention and
    min.insync.replicas. Nothing is created or changed. Exit 1 with one
    line per missing topic or drifted setting.

    Example:

        $ wear topics check --topic wear.records.v1
    """
    configure_logging()
    _finish(run(_ensured(topic, prefix, create=False)), as_json)


def register(app: typer.Typer) -> None:
    """Add the ``topics`` group to ``app``."""
    group = typer.Typer(
        help="Create or check the pipeline's Kafka topics (schemas/topics.py).", no_args_is_help=True
    )
    group.command("create")(create)
    group.command("check")(check)
    app.add_typer(group, name="topics")
