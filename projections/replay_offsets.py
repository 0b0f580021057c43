"""Offsets arithmetic of a replay (pure): how far a rebuild got, whether a version caught up with another.

A replay's partitions are :class:`Span` s, from the log start to the end offset captured when it
began. Stored offsets are the next offsets in ``consumer_offsets``, keyed by (group, topic,
partition). A partition without a stored offset is at its log start: a compacted or trimmed
partition starts above 0, and one that held no record when the replay began stores nothing at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Span", "Stored", "applied", "caught_up", "lagging", "total"]


@dataclass(frozen=True)
class Span:
    """The offsets of one partition to replay: from ``first`` (the log start) up to ``end`` (excluded).

    ``end`` is the partition's end offset when the replay started; records produced later are
    projected too but are not waited for.
    """

    group: str
    topic: str
    partition: int
    first: int
    end: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.group, self.topic, self.partition)


Stored = Mapping[tuple[str, str, int], int]
"""The stored next offset by (group, topic, partition), as in ``consumer_offsets``."""


def total(spans: Sequence[Span]) -> int:
    """The offsets to replay (records, less the gaps a compacted topic leaves)."""
    return sum(span.end - span.first for span in spans)


def applied(spans: Sequence[Span], stored: Stored) -> int:
    """The offsets of ``spans`` already applied, by the stored next offsets (capped at each end)."""
    return sum(
        min(max(stored.get(span.key, span.first), span.first), span.end) - span.first for span in spans
    )


def caught_up(spans: Sequence[Span], stored: Stored) -> bool:
    """True when every partition's stored next offset reached its end (an empty partition is done)."""
    return all(stored.get(span.key, span.first) >= span.end for span in spans)


def lagging(
    positions: Mapping[int, int], targets: Mapping[int, int], floors: Mapping[int, int]
) -> dict[int, int]:
    """The partitions where ``positions`` is below ``targets``, and by how many offsets.

    ``positions`` and ``targets`` are next offsets by partition (a version's stored offsets, another
    version's, or a topic's end offsets); a partition missing from ``positions`` is at its floor (the
    log start captured when the replay began: nothing below it can be read any more).
    """
    behind: dict[int, int] = {}
    for partition, target in targets.items():
        position = positions.get(partition, floors.get(partition, 0))
        if position < target:
            behind[partition] = target - position
    return behind
