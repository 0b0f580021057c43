"""The verification of a rebuilt read-model version, before it may be served.

Three checks, read in one ``REPEATABLE READ`` snapshot (each batch commits its rows with its offsets,
so within a snapshot a version's tables and its stored offsets agree):

- **checksums**: every table's row count and order-independent checksum (``versions.checksums``),
  recorded with ``versions.mark_verified``;
- **accounting**: every record the rebuild read is applied, dead-lettered or skipped because its
  member was erased. The rebuild's worker counts the records it read, dead-lettered and skipped; the
  applied ones are what ``sum(rm_sync_status.records_applied)`` of the version grew by (every record
  and every Kafka tombstone counts one). Exact for the records this run read, whatever earlier
  interrupted runs did, except for a bulk load resumed before its ``finish`` (its counts sit in
  staging tables until then): that one is reported as not checked;
- **comparison** with the served version, when it projects the same topic and has consumed exactly
  the same offsets: equal or different, table by table. A difference is reported, not refused: a
  rebuild after a projection fix is meant to differ.

A version whose accounting does not balance stays ``building`` (a switch to it needs ``--force``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg

from infra.exactly_once import load_offsets

from . import versions
from .versions import Connection, TableSum, Version

__all__ = ["Accounting", "Comparison", "Verification", "compare", "records_applied", "verify"]


@dataclass(frozen=True)
class Accounting:
    """What one run of the rebuild read, and where each record went."""

    seen: int
    applied: int | None  # None: not measurable (a bulk load resumed before its finish)
    dead_lettered: int
    erased: int

    @property
    def balanced(self) -> bool | None:
        """True when every record read is accounted for; None when it cannot be told."""
        if self.applied is None:
            return None
        return self.seen == self.applied + self.dead_lettered + self.erased

    def line(self) -> str:
        if self.applied is None:
            return (
                f"accounting: not checked ({self.seen:,} records read by this run, "
                "which resumed a bulk load: the earlier counts are in its staging tables)"
            )
        missing = self.seen - self.applied - self.dead_lettered - self.erased
        verdict = "balanced" if missing == 0 else f"OFF BY {missing:,}"
        return (
            f"accounting: {self.seen:,} records read = {self.applied:,} applied + {self.dead_lettered:,} "
            f"dead-lettered + {self.erased:,} skipped (member erased): {verdict}"
        )


@dataclass(frozen=True)
class Comparison:
    """The new version's tables against the served version's, when both consumed the same offsets."""

    version: int
    equal: Mapping[str, bool] = field(default_factory=dict)
    reason: str = ""  # why not compared; empty when compared

    def line(self) -> str:
        if self.reason:
            return f"not compared with version {self.version}: {self.reason}"
        same = [table for table, equal in self.equal.items() if equal]
        other = [table for table, equal in self.equal.items() if not equal]
        parts = []
        if same:
            parts.append(f"equal {', '.join(same)}")
        if other:
            parts.append(f"DIFFERENT {', '.join(other)}")
        return f"compared with version {self.version} at the same offsets: {'; '.join(parts)}"


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`."""

    version: int
    sums: Mapping[str, TableSum]
    accounting: Accounting
    comparison: Comparison

    @property
    def verified(self) -> bool:
        """False only when the accounting is known not to balance."""
        return self.accounting.balanced is not False

    def lines(self) -> list[str]:
        rows = ", ".join(f"{table} {s.rows:,}" for table, s in self.sums.items())
        return [
            f"version {self.version}: {sum(s.rows for s in self.sums.values()):,} rows ({rows})",
            self.accounting.line(),
            self.comparison.line(),
        ]


def compare(new: Mapping[str, TableSum], old: Mapping[str, TableSum]) -> dict[str, bool]:
    """Table by table: the same row count and checksum (a table missing on one side differs)."""
    return {table: new[table] == old.get(table) for table in new}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def records_applied(connection: Connection, version: Version) -> int:
    """The records the projection applied to ``version``: the sum of its members' ``records_applied``."""
    source = f"{_quote(version.schema)}.rm_sync_status"
    return int(await connection.fetchval(f"SELECT coalesce(sum(records_applied), 0) FROM {source}"))  # noqa: S608 - a quoted registry name


async def verify(
    pool: asyncpg.Pool,
    version: Version,
    *,
    configured_topic: str,
    configured_group: str,
    seen: int,
    applied_before: int | None,
    dead_lettered: int,
    erased: int,
) -> Verification:
    """Check ``version`` (caught up, its writer stopped) and mark it verified when the accounting holds.

    ``seen``, ``dead_lettered`` and ``erased`` are the rebuild worker's counts for this run;
    ``applied_before`` is :func:`records_applied` when the run began (None: not measurable).
    """
    topic = version.topic(configured_topic)
    async with pool.acquire() as connection, connection.transaction(isolation="repeatable_read"):
        sums = await versions.checksums(connection, version)
        applied = None
        if applied_before is not None:
            applied = await records_applied(connection, version) - applied_before
        served = await versions.serving(connection)
        if served.number == version.number:
            comparison = Comparison(served.number, reason="it is this version")
        elif served.topic(configured_topic) != topic:
            comparison = Comparison(served.number, reason=f"it projects {served.topic(configured_topic)}")
        else:
            mine = await load_offsets(connection, version.group(configured_group), topic)
            theirs = await load_offsets(connection, served.group(configured_group), topic)
            if mine != theirs:
                gap = sum(mine.values()) - sum(theirs.values())
                comparison = Comparison(
                    served.number,
                    reason=f"it consumed other offsets of {topic} ({gap:+,} here: live records moved on)",
                )
            else:
                comparison = Comparison(
                    served.number, equal=compare(sums, await versions.checksums(connection, served))
                )
        accounting = Accounting(seen, applied, dead_lettered, erased)
        outcome = Verification(version.number, sums, accounting, comparison)
        if outcome.verified:
            await versions.mark_verified(connection, version.number, sums)
    return outcome
