"""A writer of the served version that waits for a switch reads the version switched to, never nothing.

The live projection reads ``read_model_serving`` FOR SHARE in every batch (``versions.serving``); a
switch holds that row FOR UPDATE. A batch that started waiting before the switch committed must get
the new version once it commits. (Locking the row in the statement that joins the registry made
PostgreSQL re-check the join against the registry row read before the switch: no row, and the live
worker ended with "read_model_serving is empty".)
"""

from __future__ import annotations

import asyncio

import asyncpg

from projections import versions
from tests.integration.projections.helpers import wait_for


async def test_a_share_lock_waiting_for_a_switch_reads_the_version_switched_to(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as switching, db_pool.acquire() as writing:
        async with switching.transaction():
            created = await versions.create(switching, records_topic=None, bulk=False)
        transaction = switching.transaction()
        await transaction.start()
        await versions.switch(switching, created.number, force=True)
        waiting_pid = writing.get_server_pid()

        async def batch() -> versions.Version:
            async with writing.transaction():
                return await versions.serving(writing, lock="share")

        reading = asyncio.create_task(batch())

        async def blocked() -> bool:  # the batch waits for the switch's row lock
            return bool(
                await db_pool.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", waiting_pid
                )
            )

        await wait_for(blocked, 10, "the batch waiting for the switch")
        await transaction.commit()
        assert (await reading).number == created.number
