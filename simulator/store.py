"""The in-memory record store: per member and kind, a newest-first index with O(log n) range lookup.

Documents are kept in canonical form (``score: None`` when unscored) and pre-rendered once to the
exact bytes served (orjson, compact), so the hot data route only slices lists and joins bytes.
Range queries implement §5.1: a record matches when ``start < end`` and (``end`` is null or
``record.end >= start``); recoveries use their sleep's bounds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from simulator.generator import Member
from simulator.pagination import SortKey
from simulator.timefmt import parse_query_datetime

__all__ = ["Entry", "Kind", "RenderOptions", "Store"]

Json = dict[str, Any]
Kind = Literal["cycle", "sleep", "workout", "recovery"]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How canonical documents are written on the wire (the configurable WHOOP ambiguities)."""

    unscored_score: Literal["omit", "null"] = "omit"
    include_sport_id: bool = True


@dataclass(slots=True)
class Entry:
    """One stored document, its sort key and its served bytes."""

    key: SortKey
    start_ms: int
    end_ms: int | None
    doc: Json
    body: bytes


@dataclass
class _Index:
    keys: list[SortKey] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    max_span_ms: int = 0

    def put(self, entry: Entry) -> None:
        position = bisect_left(self.keys, entry.key)
        if position < len(self.keys) and self.keys[position] == entry.key:
            self.entries[position] = entry
        else:
            self.keys.insert(position, entry.key)
            self.entries.insert(position, entry)
        if entry.end_ms is not None:
            self.max_span_ms = max(self.max_span_ms, entry.end_ms - entry.start_ms)

    def remove(self, key: SortKey) -> None:
        position = bisect_left(self.keys, key)
        if position < len(self.keys) and self.keys[position] == key:
            del self.keys[position]
            del self.entries[position]

    def page(
        self, start_ms: int | None, end_ms: int, after: SortKey | None, limit: int
    ) -> tuple[list[Entry], bool]:
        position = bisect_left(self.keys, (1 - end_ms, ""))
        if after is not None:
            position = max(position, bisect_right(self.keys, after))
        lowest = None if start_ms is None else start_ms - self.max_span_ms
        found: list[Entry] = []
        for entry in self.entries[position:]:
            if lowest is not None and entry.start_ms < lowest:
                break
            if start_ms is None or entry.end_ms is None or entry.end_ms >= start_ms:
                if len(found) == limit:
                    return found, True
                found.append(entry)
        return found, False


class Store:
    """Members, their documents by id, and the per-member range indexes."""

    def __init__(self, render: RenderOptions) -> None:
        self._render = render
        self.members: dict[int, Member] = {}
        self._indexes: dict[tuple[int, Kind], _Index] = {}
        self.cycles: dict[int, Entry] = {}
        self.sleeps: dict[str, Entry] = {}
        self.workouts: dict[str, Entry] = {}
        self.recoveries: dict[int, Entry] = {}  # by cycle id
        self.profiles: dict[int, bytes] = {}
        self.bodies: dict[int, bytes] = {}
        self.v1_map: dict[int, str] = {}

    def render(self, doc: Json) -> bytes:
        """The wire bytes of a canonical document."""
        out = doc
        if doc.get("score", 0) is None and self._render.unscored_score == "omit":
            out = {k: v for k, v in doc.items() if k != "score"}
        if not self._render.include_sport_id and "sport_id" in out:
            out = {k: v for k, v in out.items() if k != "sport_id"}
        return orjson.dumps(out)

    def add_member(self, member: Member) -> None:
        """Index a generated member and all of their history."""
        self.members[member.user_id] = member
        self.profiles[member.user_id] = orjson.dumps(member.profile)
        self.bodies[member.user_id] = orjson.dumps(member.body)
        for cycle in member.cycles:
            self.put_cycle(cycle)
        for sleep in member.sleeps:
            self.put_sleep(sleep)
        for workout in member.workouts:
            self.put_workout(workout)
        for recovery in member.recoveries:
            self.put_recovery(recovery)
        self.v1_map.update(member.v1_map)

    def _entry(self, doc: Json, ident: str, start: str, end: str | None) -> Entry:
        start_ms = parse_query_datetime(start)
        end_ms = None if end is None else parse_query_datetime(end)
        return Entry((-start_ms, ident), start_ms, end_ms, doc, self.render(doc))

    def _index(self, user_id: int, kind: Kind) -> _Index:
        return self._indexes.setdefault((user_id, kind), _Index())

    def _replace(self, user_id: int, kind: Kind, old: Entry | None, new: Entry) -> None:
        index = self._index(user_id, kind)
        if old is not None and old.key != new.key:
            index.remove(old.key)
        index.put(new)

    def put_cycle(self, doc: Json) -> Entry:
        """Insert or replace a cycle."""
        entry = self._entry(doc, str(doc["id"]), doc["start"], doc["end"])
        self._replace(doc["user_id"], "cycle", self.cycles.get(doc["id"]), entry)
        self.cycles[doc["id"]] = entry
        return entry

    def put_sleep(self, doc: Json) -> Entry:
        """Insert or replace a sleep; a main sleep also moves its recovery in the recovery index."""
        entry = self._entry(doc, doc["id"], doc["start"], doc["end"])
        self._replace(doc["user_id"], "sleep", self.sleeps.get(doc["id"]), entry)
        self.sleeps[doc["id"]] = entry
        recovery = self.recoveries.get(doc["cycle_id"])
        if recovery is not None and recovery.doc["sleep_id"] == doc["id"]:
            self.put_recovery(recovery.doc)
        return entry

    def put_workout(self, doc: Json) -> Entry:
        """Insert or replace a workout."""
        entry = self._entry(doc, doc["id"], doc["start"], doc["end"])
        self._replace(doc["user_id"], "workout", self.workouts.get(doc["id"]), entry)
        self.workouts[doc["id"]] = entry
        return entry

    def put_recovery(self, doc: Json) -> Entry:
        """Insert or replace a recovery, indexed by its sleep's bounds."""
        sleep = self.sleeps[doc["sleep_id"]].doc
        entry = self._entry(doc, str(doc["cycle_id"]), sleep["start"], sleep["end"])
        self._replace(doc["user_id"], "recovery", self.recoveries.get(doc["cycle_id"]), entry)
        self.recoveries[doc["cycle_id"]] = entry
        return entry

    def delete_workout(self, workout_id: str) -> Entry | None:
        """Remove a workout; later GETs answer 404."""
        entry = self.workouts.pop(workout_id, None)
        if entry is not None:
            self._index(entry.doc["user_id"], "workout").remove(entry.key)
        return entry

    def delete_sleep(self, sleep_id: str) -> tuple[Entry | None, Entry | None]:
        """Remove a sleep and the recovery based on it; returns both (either may be None)."""
        entry = self.sleeps.pop(sleep_id, None)
        if entry is None:
            return None, None
        self._index(entry.doc["user_id"], "sleep").remove(entry.key)
        recovery = self.recoveries.get(entry.doc["cycle_id"])
        if recovery is None or recovery.doc["sleep_id"] != sleep_id:
            return entry, None
        del self.recoveries[entry.doc["cycle_id"]]
        self._index(recovery.doc["user_id"], "recovery").remove(recovery.key)
        return entry, recovery

    def main_sleep(self, cycle_id: int) -> Entry | None:
        """The (non-nap) sleep that starts a cycle."""
        cycle = self.cycles.get(cycle_id)
        if cycle is None:
            return None
        for entry in self._index(cycle.doc["user_id"], "sleep").entries:
            if entry.doc["cycle_id"] == cycle_id and not entry.doc["nap"]:
                return entry
        return None

    def page(
        self, user_id: int, kind: Kind, start_ms: int | None, end_ms: int, after: SortKey | None, limit: int
    ) -> tuple[list[Entry], bool]:
        """One page, newest first, and whether more matching records follow."""
        index = self._indexes.get((user_id, kind))
        if index is None:
            return [], False
        return index.page(start_ms, end_ms, after, limit)

    def count(self, user_id: int, kind: Kind) -> int:
        """How many records of a kind a member has."""
        index = self._indexes.get((user_id, kind))
        return 0 if index is None else len(index.entries)
