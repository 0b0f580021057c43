"""The dry-run diff of a re-normalization: the records a generation holds against the ones the current
normalizer makes of the same documents. Pure: values in, a summary out.

Both sides are the latest record per key (:func:`latest`: a compacted topic read in offset order,
a tombstone removes its key), each a record's JSON object, or its JSON text (parsed one pair at a
time, so a large generation is held as compact bytes). :func:`compare` counts, per record type,
the records added (a key only the new side has), removed (only the old side), changed (a field
other than the envelope's differs), changed in their envelope only, and unchanged; and, per field,
how many records it changed in, with a few examples. ``event_id`` and ``normalizer_version`` change
with the normalizer's version whatever the code does (:data:`ENVELOPE_FIELDS`): they are counted
apart, never as changed fields. A key whose record changes type (a record become a deletion) is
removed from its old type and added to its new one. :func:`render` lays the summary out as lines
for the operator's terminal, the only place its example values are shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

__all__ = [
    "ENVELOPE_FIELDS",
    "Diff",
    "Example",
    "TypeDiff",
    "compare",
    "latest",
    "render",
]

ENVELOPE_FIELDS = frozenset(("event_id", "normalizer_version"))
"""Fields that change with the normalizer's version, whatever the code does: reported apart."""

Value = Mapping[str, Any] | bytes
V = TypeVar("V")
_SHOWN = 60  # characters of an example value


@dataclass
class TypeDiff:
    """The outcome for one record type."""

    added: int = 0
    removed: int = 0
    changed: int = 0
    envelope_only: int = 0
    unchanged: int = 0
    fields: Counter[str] = field(default_factory=Counter)

    @property
    def compared(self) -> int:
        return self.added + self.removed + self.changed + self.envelope_only + self.unchanged


@dataclass(frozen=True)
class Example:
    """One changed field of one record."""

    key: str
    record_type: str
    field: str
    old: Any
    new: Any


@dataclass
class Diff:
    """What re-normalizing would change, per record type and per field."""

    by_type: dict[str, TypeDiff] = field(default_factory=dict)
    envelope: Counter[str] = field(default_factory=Counter)
    examples: list[Example] = field(default_factory=list)

    def of(self, record_type: str) -> TypeDiff:
        return self.by_type.setdefault(record_type, TypeDiff())

    @property
    def changed_fields(self) -> dict[str, Counter[str]]:
        """``{record type: {field: records changed}}`` for the types with a changed field."""
        return {kind: diff.fields for kind, diff in sorted(self.by_type.items()) if diff.fields}

    def total(self, what: str) -> int:
        """The sum of one count (``added``, ``removed``, ``changed``, ...) over the record types."""
        return sum(int(getattr(diff, what)) for diff in self.by_type.values())


def latest(items: Iterable[tuple[bytes, V | None]], into: Mapping[bytes, V] | None = None) -> dict[bytes, V]:
    """The latest value per key of a log read in offset order; a None value (a tombstone) removes it.

    ``into`` is what the log is appended to (a copy is updated): the records a generation starts with.
    """
    result: dict[bytes, V] = dict(into or {})
    for key, value in items:
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def _type_of(value: Mapping[str, Any]) -> str:
    return str(value.get("event_type", "?"))


def _parsed(value: Value | None) -> Mapping[str, Any] | None:
    if isinstance(value, bytes):
        parsed = orjson.loads(value)
        return parsed if isinstance(parsed, dict) else {}
    return value


def compare(
    old: Mapping[bytes, Value],
    new: Mapping[bytes, Value],
    *,
    keys: Collection[bytes] | None = None,
    examples_per_field: int = 3,
) -> Diff:
    """The diff of ``old`` → ``new`` over ``keys`` (default: every key of either side)."""
    diff = Diff()
    shown: Counter[tuple[str, str]] = Counter()
    chosen = sorted(set(old) | set(new)) if keys is None else sorted(keys)
    for key in chosen:
        before, after = _parsed(old.get(key)), _parsed(new.get(key))
        if before is None and after is None:
            continue
        if before is None or after is None or _type_of(before) != _type_of(after):
            if before is not None:
                diff.of(_type_of(before)).removed += 1
            if after is not None:
                diff.of(_type_of(after)).added += 1
            continue
        kind = _type_of(after)
        differing = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
        fields = [name for name in differing if name not in ENVELOPE_FIELDS]
        diff.envelope.update(name for name in differing if name in ENVELOPE_FIELDS)
        outcome = diff.of(kind)
        if fields:
            outcome.changed += 1
            outcome.fields.update(fields)
            for name in fields:
                if shown[(kind, name)] < examples_per_field:
                    shown[(kind, name)] += 1
                    example = Example(
                        key.decode("utf-8", "replace"), kind, name, before.get(name), after.get(name)
                    )
                    diff.examples.append(example)
        elif differing:
            outcome.envelope_only += 1
        else:
            outcome.unchanged += 1
    return diff


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def render(diff: Diff, *, old_name: str, new_name: str) -> list[str]:
    """The summary as lines of text: counts per type, changed fields, envelope fields, examples."""
    lines = [f"diff: {old_name} -> {new_name}"]
    header = ("record type", "added", "removed", "changed", "envelope only", "unchanged")
    rows = [
        (kind, d.added, d.removed, d.changed, d.envelope_only, d.unchanged)
        for kind, d in sorted(diff.by_type.items())
    ]
    rows.append(
        (
            "total",
            diff.total("added"),
            diff.total("removed"),
            diff.total("changed"),
            diff.total("envelope_only"),
            diff.total("unchanged"),
        )
    )
    width = max(len(header[0]), *(len(str(row[0])) for row in rows))
    lines.append(f"  {header[0]:<{width}}" + "".join(f"  {title:>13}" for title in header[1:]))
    lines.extend(f"  {row[0]:<{width}}" + "".join(f"  {n:>13,}" for n in row[1:]) for row in rows)
    changed = diff.changed_fields
    if changed:
        lines.append("changed fields (records changed):")
        lines.extend(
            f"  {kind}.{name}: {count:,}"
            for kind, fields in changed.items()
            for name, count in sorted(fields.items())
        )
    else:
        lines.append("changed fields: none")
    if diff.envelope:
        counted = ", ".join(f"{name} {count:,}" for name, count in sorted(diff.envelope.items()))
        lines.append(
            f"envelope fields (change with the normalizer version, not counted as changes): {counted}"
        )
    if diff.examples:
        lines.append("examples (key, field: old -> new):")
        lines.extend(
            f"  {e.key} {e.record_type}.{e.field}: {_shown(e.old)} -> {_shown(e.new)}" for e in diff.examples
        )
    return lines
