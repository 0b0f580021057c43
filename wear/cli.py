"""The ``wear`` command: one typer app, its subcommands registered by the modules of this package.

Each module of a command group exposes ``register(app)``, which adds its commands (``pull``,
``export``...) or its group (``dlq``, ``users``...) to the app. ``main`` runs the app; typer's own
usage errors already exit 2.
"""

from __future__ import annotations

import typer

from wear import dlq, export, pull, replay, status, tail, tokens, topics, users

__all__ = ["app", "main"]

app = typer.Typer(
    name="wear",
    help="The data team's command for the WHOOP pipeline: pull, replay, export, tail, status, DLQs, users.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

for module in (pull, replay, export, tail, status, dlq, topics, users, tokens):
    module.register(app)


def main() -> None:
    """Entry point of the ``wear`` console script."""
    app()
