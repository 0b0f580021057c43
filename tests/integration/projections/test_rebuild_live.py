"""End to end: the phone polls the query API every 20 ms through a rebuild with switch, records coming.

A live ``ProjectionWorker`` (``version=None``) runs throughout and records keep being produced to
the topic; ``python -m projections rebuild --yes`` (in-process) builds version 2 beside version 1,
verifies it, catches up with the live records and switches. The phone gets no error, every answer
names the version it was read from, the versions never go back (1 before the switch, 2 after), and
the switch lost nothing: at the switch version 2 had applied every offset version 1 had, and once the
live records stop it equals a clean projection of the whole topic.
"""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest
from rich.console import Console

from infra.kafka import make_producer
from infra.settings import KafkaSettings
from projections import rebuild
from projections.replay_offsets import lagging
from schemas.serde import encode
from tests.integration.projections.conftest import ApiHarness
from tests.integration.projections.helpers import key_of, produce, stored_offsets
from tests.integration.projections.rebuild_harness import (
    clean_sums,
    reaches_end,
    running,
    served,
    settings_for,
    stream,
    sums,
)
from tests.unit.projections.factory import Member

MEMBERS = [Member(650000 + i) for i in range(4)]


@pytest.mark.timeout(300)
async def test_the_phone_polls_through_a_rebuild_with_live_records_and_sees_one_switch_forward(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    api: ApiHarness,
) -> None:
    log = stream(MEMBERS, days=60)
    split = len(log) // 2
    await produce(kafka_settings, records_topic, log[:split])
    settings = settings_for(
        kafka_settings, database_url, pg_schema, records_topic, group_id, batch_max_records=20
    )
    user = MEMBERS[0].user_id
    await api.token_for(user)
    answers: list[tuple[int, str | None]] = []
    polling, rebuilt = asyncio.Event(), asyncio.Event()

    async def phone() -> None:
        while not polling.is_set():
            response = await api.get(f"/v1/data/{user}/sleep", user, params={"limit": "10"})
            answers.append((response.status_code, response.headers.get("x-read-model-version")))
            await asyncio.sleep(0.02)

    async def live_records() -> int:
        """Produce the rest of the log one record at a time, until it ends or a little after the switch."""
        producer = make_producer(kafka_settings, "test-live-records")
        await producer.start()
        sent = 0
        try:
            for record in log[split:]:
                if isinstance(record, tuple):
                    await producer.send_and_wait(records_topic, value=record[1], key=record[0])
                else:
                    await producer.send_and_wait(records_topic, value=encode(record), key=key_of(record))
                sent += 1
                if rebuilt.is_set() and sent % 20 == 0:
                    break  # records after the switch too, then no more
                await asyncio.sleep(0.005)
        finally:
            await producer.stop()
        return sent

    async with running(settings, db_pool):  # the live worker: it follows the switch
        await reaches_end(db_pool, kafka_settings, group_id, records_topic)
        reading = asyncio.create_task(phone())
        producing = asyncio.create_task(live_records())
        output = io.StringIO()
        code = await rebuild.rebuild(settings, yes=True, console=Console(file=output, width=300))
        rebuilt.set()
        printed = output.getvalue()
        assert code == rebuild.EXIT_OK, printed
        assert "switched from version 1 to version 2" in printed
        # version 1 is written no more: its offsets are where the switch found them
        at_switch = await stored_offsets(db_pool, group_id, records_topic)
        assert lagging(await stored_offsets(db_pool, "read-models-v2", records_topic), at_switch, {}) == {}
        sent = await producing
        assert sent > 0
        await reaches_end(db_pool, kafka_settings, "read-models-v2", records_topic)  # the live worker's
        assert await stored_offsets(db_pool, group_id, records_topic) == at_switch
        polling.set()
        await reading

    assert answers and all(status == 200 for status, _ in answers), sorted({s for s, _ in answers})
    assert all(v is not None for _, v in answers), "an answer without X-Read-Model-Version"
    seen = [int(v or 0) for _, v in answers]
    assert seen == sorted(seen), "a version went back"
    assert seen[0] == 1 and seen[-1] == 2 and set(seen) == {1, 2}
    assert await served(db_pool) == 2
    assert await sums(db_pool, 2) == await clean_sums(kafka_settings, settings, db_pool)
