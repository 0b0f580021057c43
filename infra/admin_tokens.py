"""Admin tokens configured as hashes: ``label:sha256hex:scope+scope`` items, never plaintext.

Both HTTP stages (ingest and the query API) accept admin tokens, each with its own variable and
its own scopes; this is the one parser they share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["AdminToken", "parse_admin_token_items"]

_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AdminToken:
    """A configured admin token: its sha256 (hex), a label for logs, and its scopes."""

    token_hash: str
    label: str
    scopes: frozenset[str]


def parse_admin_token_items(
    items: Iterable[str], *, variable: str, allowed_scopes: frozenset[str]
) -> tuple[AdminToken, ...]:
    """Parse the items of ``variable``; raise ValueError naming the bad item (never its hash)."""
    tokens: list[AdminToken] = []
    for position, item in enumerate(items):
        parts = item.split(":")
        if len(parts) != 3 or not parts[0] or _HASH.fullmatch(parts[1]) is None:
            raise ValueError(f"{variable} item {position}: expected 'label:sha256hex:scope+scope'")
        scopes = frozenset(s for s in parts[2].split("+") if s)
        if not scopes or not scopes <= allowed_scopes:
            raise ValueError(
                f"{variable} item {position} ({parts[0]}): scopes must be among {sorted(allowed_scopes)}"
            )
        tokens.append(AdminToken(parts[1], parts[0], scopes))
    return tuple(tokens)
