"""Admin tokens as the stages configure them (pure): which stage takes which scope, items, listings.

Admin tokens are not stored in a table: each HTTP stage reads its own variable of
``label:sha256hex:scope+scope`` items (``infra.admin_tokens``): ``INGEST_ADMIN_TOKENS`` for the ingest
edge (scopes ``pull``, ``read``, ``connections``) and ``PROJECTIONS_ADMIN_TOKENS`` for the query API
(``read``, ``status``). A token the data team creates is one secret; each stage whose scopes it asks
for gets an item with that stage's share of the scopes and the same hash. Revoking is removing the
label's items from the variables: the stage stops accepting the token when it restarts with the new
value. Listings show labels, scopes and the first 12 hex digits of the hash, never more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from infra.admin_token_settings import AdminTokenSettings
from infra.admin_tokens import AdminToken
from ingest.settings import IngestSettings
from projections.settings import ProjectionsSettings

__all__ = [
    "HASH_PREFIX",
    "STAGES",
    "Configured",
    "NewToken",
    "configured_tokens",
    "new_token",
    "parse_scopes",
    "stage_scopes",
    "without_label",
]

STAGES: dict[str, type[AdminTokenSettings]] = {"ingest": IngestSettings, "projections": ProjectionsSettings}
"""Each stage that accepts admin tokens and its settings class (its variable and its scopes)."""

HASH_PREFIX = 12
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Configured:
    """An admin token as a stage is configured with it (no hash beyond its prefix)."""

    stage: str
    variable: str
    label: str
    scopes: tuple[str, ...]
    hash_prefix: str


@dataclass(frozen=True)
class NewToken:
    """A new token (shown once) and, per stage variable, its item and the variable's new value."""

    token: str
    label: str
    items: dict[str, str]
    values: dict[str, str]


def parse_scopes(texts: Sequence[str]) -> tuple[str, ...]:
    """``pull+read``, ``pull,read`` or repeated options, as sorted distinct scopes; ValueError when none."""
    scopes = sorted({s.strip() for text in texts for s in re.split(r"[+,\s]", text) if s.strip()})
    if not scopes:
        raise ValueError("no scope given: e.g. --scopes read+pull")
    return tuple(scopes)


def stage_scopes(scopes: Sequence[str], stage: str | None) -> dict[str, tuple[str, ...]]:
    """Each stage's share of ``scopes`` (every stage that takes one, or only ``stage``); ValueError naming
    a scope no stage (or not ``stage``) takes."""
    stages = {stage: STAGES[stage]} if stage is not None else STAGES
    taken = {name: tuple(s for s in scopes if s in cls.admin_scopes) for name, cls in stages.items()}
    for scope in scopes:
        if not any(scope in share for share in taken.values()):
            allowed = sorted({s for cls in stages.values() for s in cls.admin_scopes})
            where = f"the {stage} stage" if stage is not None else "any stage"
            raise ValueError(f"scope {scope[:40]!r} is not a scope of {where}: use {', '.join(allowed)}")
    return {name: share for name, share in taken.items() if share}


def configured_tokens(configured: Mapping[str, Sequence[AdminToken]]) -> list[Configured]:
    """The tokens configured per stage, as listed."""
    return [
        Configured(
            stage,
            STAGES[stage].admin_tokens_variable(),
            token.label,
            tuple(sorted(token.scopes)),
            token.token_hash[:HASH_PREFIX],
        )
        for stage, tokens in configured.items()
        for token in tokens
    ]


def new_token(
    label: str, shares: Mapping[str, Sequence[str]], current: Mapping[str, Sequence[str]]
) -> NewToken:
    """One token for every stage in ``shares``; ValueError (before any token exists) on a bad label or a
    label a stage already has. ``current``: the items each stage is configured with now."""
    if _LABEL.fullmatch(label) is None:
        raise ValueError(f"bad label {label[:40]!r}: 1-64 of letters, digits, '.', '_', '-'")
    for stage in shares:
        labels = {item.split(":", 1)[0] for item in current.get(stage, ())}
        if label in labels:
            variable = STAGES[stage].admin_tokens_variable()
            raise ValueError(f"{variable} already has a token labelled {label!r}: revoke it first")
    token, token_hash = "", ""
    items: dict[str, str] = {}
    values: dict[str, str] = {}
    for stage, scopes in shares.items():
        cls = STAGES[stage]
        if not token:
            token, item = cls.new_admin_token(label, "+".join(scopes))
            token_hash = item.split(":")[1]
        else:
            item = f"{label}:{token_hash}:{'+'.join(scopes)}"
            cls.parse_admin_tokens((item,))
        variable = cls.admin_tokens_variable()
        items[variable] = item
        values[variable] = ",".join([*current.get(stage, ()), item])
    return NewToken(token, label, items, values)


def without_label(label: str, current: Mapping[str, Sequence[str]], stage: str | None) -> dict[str, str]:
    """The new value of each stage variable that had items labelled ``label`` (those items removed);
    ValueError when none had."""
    values: dict[str, str] = {}
    for name, items in current.items():
        if stage is not None and name != stage:
            continue
        kept = [item for item in items if item.split(":", 1)[0] != label]
        if len(kept) != len(items):
            values[STAGES[name].admin_tokens_variable()] = ",".join(kept)
    if not values:
        raise ValueError(f"no admin token labelled {label[:64]!r} is configured")
    return values
