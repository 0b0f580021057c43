"""Is this document new? The pure decision behind :meth:`processors.resources.DocumentLog.publish`.

Given the documents (and deletions) of one member's fetch, what ``fetcher_resources`` holds for each
resource (read under row locks) and when the fetch started, :func:`decide_appends` says which items to
append to ``whoop.documents.v1`` and which documents to remember:

* a deletion is appended unless the resource is already deleted;
* a document fetched before a deletion was appended (``deleted_at >= fetch_started``) is stale: it is
  neither appended nor remembered (no resurrection);
* any other document is remembered, and appended unless it equals the last one appended (same WHOOP
  ``updated_at`` and ``score_state``, resource not deleted).

No I/O, no clock: the caller reads the rows and carries out the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import JsonValue

from schemas.records import ResourceType

__all__ = ["Appends", "Item", "Json", "Stored", "decide_appends", "parse_time", "text"]

Json = dict[str, JsonValue]


@dataclass(frozen=True)
class Item:
    """One document to append: a fetched WHOOP document, or a deletion (``document`` None)."""

    resource_type: ResourceType
    resource_id: str
    document: Json | None = None
    context: Json = field(default_factory=dict)


@dataclass(frozen=True)
class Stored:
    """What ``fetcher_resources`` holds for one resource: the last document appended, or its deletion."""

    whoop_updated_at: datetime | None = None
    score_state: str | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class Appends:
    """The decision: ``fresh`` items to append (in the given order), ``touched`` documents to remember."""

    fresh: tuple[Item, ...]
    touched: tuple[Item, ...]

    @property
    def fresh_keys(self) -> frozenset[tuple[str, str]]:
        """The (resource type, resource id) of every fresh item."""
        return frozenset((i.resource_type, i.resource_id) for i in self.fresh)

    @property
    def deletions(self) -> tuple[Item, ...]:
        """The fresh deletions."""
        return tuple(i for i in self.fresh if i.document is None)


def parse_time(value: JsonValue) -> datetime | None:
    """A WHOOP timestamp (RFC 3339, ``Z`` allowed), or None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def text(value: JsonValue) -> str | None:
    """A JSON string, or None."""
    return value if isinstance(value, str) else None


def decide_appends(
    items: Sequence[Item], stored: Mapping[tuple[str, str], Stored], fetch_started: datetime
) -> Appends:
    """What to append and what to remember among ``items`` (see the module docstring).

    ``stored`` holds every item's resource (a resource never appended has an empty :class:`Stored`).
    """
    fresh: list[Item] = []
    touched: list[Item] = []
    for item in items:
        row = stored[(item.resource_type, item.resource_id)]
        if item.document is None:
            if row.deleted_at is None:
                fresh.append(item)
            continue
        if row.deleted_at is not None and row.deleted_at >= fetch_started:
            continue  # fetched before the deletion was appended: stale
        touched.append(item)
        if not _unchanged(item.document, row):
            fresh.append(item)
    return Appends(tuple(fresh), tuple(touched))


def _unchanged(document: Json, row: Stored) -> bool:
    updated = parse_time(document.get("updated_at"))
    return (
        row.deleted_at is None
        and updated is not None
        and row.whoop_updated_at == updated
        and row.score_state == document.get("score_state")
    )
