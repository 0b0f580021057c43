"""``wear tokens create|list|revoke``: the admin tokens of the ingest edge and of the query API.

One front end for what ``python -m ingest admin-token`` and ``python -m projections admin-token`` do
apart. Admin tokens are configured as hashes in ``INGEST_ADMIN_TOKENS`` and
``PROJECTIONS_ADMIN_TOKENS`` (``wear.tokens_config``), not stored in a table, so:

* ``create`` prints a new token once, with the item (and the new value) of each variable to set;
* ``list`` shows what this environment configures: labels, scopes, hash prefixes, never a token;
* ``revoke`` prints the new value of each variable without the label's items: a stage stops accepting
  the token when it restarts with that value.

Nothing here connects to Kafka or PostgreSQL; a bad label, scope or configured item is exit 2.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from projections.commands import say
from wear.common import STDERR, STDOUT, JsonOption, print_json, run, usage
from wear.tokens_config import (
    STAGES,
    configured_tokens,
    new_token,
    parse_scopes,
    stage_scopes,
    without_label,
)

__all__ = ["register"]

Stage = Literal["ingest", "projections"]
StageOption = Annotated[
    Stage | None,
    typer.Option("--stage", help="Only this stage: ingest (the edge) or projections (the query API)."),
]


def _current() -> dict[str, tuple[str, ...]]:
    """The items each stage is configured with in this environment (checked as the stage checks them)."""
    current: dict[str, tuple[str, ...]] = {}
    for stage, cls in STAGES.items():
        try:
            current[stage] = tuple(cls().admin_tokens)
        except ValidationError as exc:
            usage(
                f"bad setting of the {stage} stage: "
                + "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
            )
    return current


async def _create(label: str, scopes: list[str], stage: Stage | None, as_json: bool) -> None:
    current = _current()
    try:
        shares = stage_scopes(parse_scopes(scopes), stage)
        made = new_token(label, shares, current)
    except ValueError as exc:
        usage(str(exc))
    if as_json:
        print_json(asdict(made))
        return
    say(STDOUT, f"token (shown once): {made.token}")
    for variable, item in made.items.items():
        say(STDOUT, f"{variable} item: {item}")
    for variable, value in made.values.items():
        say(STDERR, f"set {variable}={value} and restart the stage")


async def _list(stage: Stage | None, as_json: bool) -> None:
    current = _current()
    configured = configured_tokens(
        {
            name: STAGES[name].parse_admin_tokens(items)
            for name, items in current.items()
            if stage in (None, name)
        }
    )
    if as_json:
        print_json({"tokens": [asdict(c) for c in configured], "count": len(configured)})
        return
    table = Table("stage", "variable", "label", "scopes", "sha256 prefix")
    for c in configured:
        table.add_row(c.stage, c.variable, c.label, "+".join(c.scopes), c.hash_prefix)
    (STDOUT if STDOUT.is_terminal else Console(width=160)).print(table)  # never cut in a pipe
    say(STDOUT, f"{len(configured)} admin tokens configured")


async def _revoke(label: str, stage: Stage | None, as_json: bool) -> None:
    try:
        values = without_label(label, _current(), stage)
    except ValueError as exc:
        usage(str(exc))
    if as_json:
        print_json({"label": label, "values": values})
        return
    for variable, value in values.items():
        say(STDOUT, f"{variable}={value}")
    say(STDERR, f"set {', '.join(values)} as above and restart the stage: it then refuses {label!r}")


def register(app: typer.Typer) -> None:
    """Add the ``wear tokens`` group to ``app``."""
    group = typer.Typer(
        help="Admin tokens: create, list, revoke.", no_args_is_help=True, rich_markup_mode="rich"
    )

    @group.command("create")
    def create(
        label: Annotated[str, typer.Argument(help="A name for the token (letters, digits, '.', '_', '-').")],
        scopes_argument: Annotated[
            str | None, typer.Argument(metavar="[SCOPES]", help="scope+scope (or use --scopes).")
        ] = None,
        scopes: Annotated[
            list[str] | None,
            typer.Option(
                "--scopes",
                help="ingest: pull, read, connections; projections: read, status (+, comma or repeated).",
            ),
        ] = None,
        stage: StageOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Make a new admin token: printed once, with the item (its hash) each stage needs.

        One token serves each stage whose scopes it asks for (read+pull: the edge's read and pull, the API's).

        Set each printed item in its variable and restart the stage.

        Example:

            $ wear tokens create nightly-export --scopes read+status --stage projections

            token (shown once): wpa_…

            PROJECTIONS_ADMIN_TOKENS item: nightly-export:3f9a…:read+status

        Exit status: 0 made; 2 bad label or scope, or a label already configured.
        """
        run(
            _create(label, [*(scopes or []), *([scopes_argument] if scopes_argument else [])], stage, as_json)
        )

    @group.command("list")
    def list_(stage: StageOption = None, as_json: JsonOption = False) -> None:
        """List the admin tokens configured here: stage, variable, label, scopes, hash prefix.

        Never a token: only hashes are configured.

        Example:

            $ wear tokens list --json

        Exit status: 0 listed; 2 a configured item is malformed.
        """
        run(_list(stage, as_json))

    @group.command("revoke")
    def revoke(
        label: Annotated[str, typer.Argument(help="The label of the token to revoke.")],
        stage: StageOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Revoke an admin token: prints each variable's new value without it.

        Set it and restart the stage: the stage then refuses the token.

        Example:

            $ wear tokens revoke nightly-export

            PROJECTIONS_ADMIN_TOKENS=ops:1c2d…:read

        Exit status: 0 printed; 2 no token with that label is configured.
        """
        run(_revoke(label, stage, as_json))

    app.add_typer(group, name="tokens")
