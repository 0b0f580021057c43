"""Serving a rebuilt version without losing a record: the switch waits until the version caught up.

While a rebuild's worker keeps writing the new version, the served version's live projection keeps
writing the old one. The switch (``versions.switch``: one transaction, the epoch advances) happens
only when the new version holds every record the old one holds:

- **same records topic**: in ONE transaction, lock the serving row ``FOR UPDATE`` (a live batch
  reads it ``FOR SHARE``, so the switch waits for the batches under way and holds back the next
  ones), lock the old version's offset rows ``FOR UPDATE`` (the live worker locks them in every
  batch), and check that the new version's stored offset is at least the old one's on every
  partition. If not, roll back, let the rebuild's worker catch up, and try again. After the commit,
  the live projection writes the new version from the new version's stored offsets on.
- **another records topic** (a generation of ``processors renormalize``): switch when the new
  version's stored offsets reached the topic's end offsets, read just before.

Both wait at most ``within_s``; then :class:`~projections.commands.Failed` says how far behind the
version is, and the version stays as it is, for ``python -m projections switch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import asyncpg

from infra.exactly_once import load_offsets

from . import versions
from .commands import LOCK_TIMEOUT, Failed, Interrupted
from .replay_offsets import lagging
from .settings import Settings
from .topic_offsets import end_offsets
from .versions import Connection, Version

__all__ = ["switch_when_caught_up"]

_POLL_S = 0.1
_LOCK_OLD_OFFSETS = """
SELECT partition, next_offset FROM consumer_offsets
WHERE consumer_group = $1 AND topic = $2
ORDER BY partition
FOR UPDATE
"""


def _behind(lag: Mapping[int, int], what: str) -> str:
    return f"{sum(lag.values()):,} offsets behind {what} on partition(s) {', '.join(map(str, sorted(lag)))}"


async def _try_same_topic(
    pool: asyncpg.Pool, new: Version, group: str, topic: str, floors: Mapping[int, int], force: bool
) -> tuple[Version, Version] | str:
    """Switch if the new version caught up with the served one; else why not (nothing changed)."""
    # a look without locks first: the locked attempt holds the live projection's batches back
    async with pool.acquire() as connection:
        served = await versions.serving(connection)
        theirs = await load_offsets(connection, served.group(group), topic)
        lag = lagging(await load_offsets(connection, new.group(group), topic), theirs, floors)
    if lag:
        return _behind(lag, f"version {served.number}")
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            outcome = await _switch_if_caught_up(connection, new, group, topic, floors, force)
        except asyncpg.LockNotAvailableError:
            await transaction.rollback()
            return f"the live projection's batches held the served version for {LOCK_TIMEOUT}"
        except BaseException:
            await transaction.rollback()
            raise
        if isinstance(outcome, str):
            await transaction.rollback()
        else:
            await transaction.commit()
        return outcome


async def _switch_if_caught_up(
    connection: Connection, new: Version, group: str, topic: str, floors: Mapping[int, int], force: bool
) -> tuple[Version, Version] | str:
    """In the caller's transaction: lock the serving row and the old version's offsets, then switch
    if the new version is not behind on any partition; else why not (the caller rolls back)."""
    await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    served = await versions.serving(connection, lock="update")
    rows = await connection.fetch(_LOCK_OLD_OFFSETS, served.group(group), topic)
    theirs = {row["partition"]: row["next_offset"] for row in rows}
    mine = await load_offsets(connection, new.group(group), topic)
    if lag := lagging(mine, theirs, floors):
        return _behind(lag, f"version {served.number}")
    return await versions.switch(connection, new.number, force=force)


async def switch_when_caught_up(
    pool: asyncpg.Pool,
    settings: Settings,
    number: int,
    *,
    floors: Mapping[int, int],
    stop: asyncio.Event,
    within_s: float,
    force: bool = False,
) -> tuple[Version, Version]:
    """Serve version ``number`` once it caught up (see the module docstring); (the old, the new).

    ``floors`` are the log start offsets of its topic (a partition without a stored offset is
    there). Raises :class:`~projections.versions.VersionError` when the version may not be served
    (not verified without ``force``), :class:`Failed` after ``within_s``, :class:`Interrupted` when
    ``stop`` is set first.
    """
    own = settings.projections
    async with pool.acquire() as connection:
        new = await versions.get(connection, number)
        served = await versions.serving(connection)
    if new.state == "building" and not force:
        raise versions.NotVerified(f"version {number} is not verified: use --force to serve it anyway")
    topic = new.topic(own.records_topic)
    targets = None if served.topic(own.records_topic) == topic else await end_offsets(settings, topic)
    deadline = time.monotonic() + within_s
    while True:
        if targets is None:
            outcome = await _try_same_topic(pool, new, own.group_id, topic, floors, force)
            if not isinstance(outcome, str):
                return outcome
            why = outcome
        else:
            async with pool.acquire() as connection:
                lag = lagging(await load_offsets(connection, new.group(own.group_id), topic), targets, floors)
                if not lag:
                    async with connection.transaction():
                        return await versions.switch(connection, number, force=force)
            why = _behind(lag, f"the end of {topic}")
        if time.monotonic() > deadline:
            raise Failed(f"version {number} did not catch up within {within_s:,.0f} s ({why})")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _POLL_S)
        if stop.is_set():
            raise Interrupted
