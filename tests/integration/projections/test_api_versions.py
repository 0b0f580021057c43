"""The query API reads the served read-model version: one version per answer, named in a header.

Version 1 holds three days of a member's history, version 2 five days. Answers come from version 1
until the switch and from version 2 after it, each with ``X-Read-Model-Version``; ETags change with
the switch; an old version dropped under a reader that still knew it costs one more statement, never
an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from projections import versions
from projections.fold import plan_batch
from projections.rows import Projectable
from projections.store import ReadModelStore
from schemas.records import SleepRecorded
from tests.integration.projections.conftest import ApiHarness
from tests.integration.projections.helpers import apply_batches
from tests.unit.projections.factory import T0, Member, history

ALICE = Member(482913)
ROUTES = ("sleep", "cycles", "recovery", "workouts", "daily", "sync")

pytestmark = pytest.mark.integration


async def _project_into(pool: asyncpg.Pool, number: int, records: Sequence[Projectable]) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await versions.use(connection, await versions.get(connection, number))
        await ReadModelStore().apply_changes(connection, plan_batch(records))


def _sleeps(records: Sequence[Projectable]) -> int:
    return sum(isinstance(record, SleepRecorded) for record in records)


async def _switch(pool: asyncpg.Pool, number: int) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await versions.switch(connection, number, force=True)


async def test_answers_come_from_the_served_version_and_name_it(api: ApiHarness) -> None:
    three = [record for day in history(ALICE, 3, start=T0) for record in day.records()]
    five = [record for day in history(ALICE, 5, start=T0) for record in day.records()]
    await apply_batches(api.pool, [three])
    async with api.pool.acquire() as connection, connection.transaction():
        two = await versions.create(connection, records_topic=None, bulk=False)
    await _project_into(api.pool, two.number, five)

    path = f"/v1/data/{ALICE.user_id}/sleep"
    before = await api.get(path, ALICE.user_id)
    assert before.status_code == 200 and before.headers["x-read-model-version"] == "1"
    assert len(before.json()["records"]) == _sleeps(three)
    for kind in ROUTES:
        response = await api.get(f"/v1/data/{ALICE.user_id}/{kind}", ALICE.user_id)
        assert response.status_code == 200, (kind, response.text)
        assert response.headers["x-read-model-version"] == "1", kind

    await _switch(api.pool, two.number)
    after = await api.get(path, ALICE.user_id)
    assert after.status_code == 200 and after.headers["x-read-model-version"] == str(two.number)
    assert len(after.json()["records"]) == _sleeps(five) > _sleeps(three)
    assert after.headers["etag"] != before.headers["etag"]
    # a conditional request with the tag of version 1 is answered in full
    again = await api.get(path, ALICE.user_id, headers={"If-None-Match": before.headers["etag"]})
    assert again.status_code == 200 and len(again.json()["records"]) == _sleeps(five)
    one_id = after.json()["records"][0]["id"]
    single = await api.get(f"{path}/{one_id}", ALICE.user_id)
    assert single.status_code == 200 and single.headers["x-read-model-version"] == str(two.number)


async def test_a_dropped_version_under_a_reader_is_read_again_not_an_error(api: ApiHarness) -> None:
    records = [record for day in history(ALICE, 2, start=T0) for record in day.records()]
    async with api.pool.acquire() as connection, connection.transaction():
        two = await versions.create(connection, records_topic=None, bulk=False)
        three = await versions.create(connection, records_topic=None, bulk=False)
    await _project_into(api.pool, two.number, records)
    await _project_into(api.pool, three.number, records[:3])
    await _switch(api.pool, two.number)
    path = f"/v1/data/{ALICE.user_id}/cycles"
    assert (await api.get(path, ALICE.user_id)).headers["x-read-model-version"] == str(two.number)
    # switch to 3 and drop 2 behind the reader's back: it still remembers version 2
    await _switch(api.pool, three.number)
    async with api.pool.acquire() as connection, connection.transaction():
        await versions.drop(connection, two.number)
    response = await api.get(path, ALICE.user_id)
    assert response.status_code == 200 and response.headers["x-read-model-version"] == str(three.number)
