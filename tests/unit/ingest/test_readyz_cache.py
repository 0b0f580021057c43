"""``/readyz`` is public: its answer is reused for INGEST_READYZ_CACHE_S, so callers cannot make every
call ask Kafka and PostgreSQL. Without the cache, each call below would run both checks."""

from __future__ import annotations

import asyncio

from ingest.app import create_app
from tests.support.ingest_fakes import FakePublisher, NoStore, client_for, make_settings


class CountingPublisher(FakePublisher):
    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def ready(self) -> bool:
        self.checks += 1
        await asyncio.sleep(0)  # let concurrent callers arrive while the check runs
        return self.is_ready


class CountingStore(NoStore):
    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def ready(self) -> bool:
        self.checks += 1
        return self.is_ready


async def test_rapid_readyz_calls_cause_one_check_of_kafka_and_postgresql() -> None:
    publisher, store = CountingPublisher(), CountingStore()
    app = create_app(make_settings(readyz_cache_s=60), publisher, store)
    async with client_for(app) as client:
        concurrent = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
        sequential = [await client.get("/readyz") for _ in range(30)]
    assert [r.status_code for r in concurrent + sequential] == [200] * 50
    assert (publisher.checks, store.checks) == (1, 1)


async def test_an_unready_answer_is_cached_too_and_a_zero_interval_checks_every_time() -> None:
    publisher, store = CountingPublisher(), CountingStore()
    publisher.is_ready = False
    app = create_app(make_settings(readyz_cache_s=60, retry_after_s=4), publisher, store)
    async with client_for(app) as client:
        answers = [await client.get("/readyz") for _ in range(10)]
    assert {r.status_code for r in answers} == {503} and answers[-1].headers["retry-after"] == "4"
    assert answers[-1].json()["checks"] == {"kafka": "unavailable", "postgres": "ok"}
    assert (publisher.checks, store.checks) == (1, 1)

    uncached = CountingPublisher()
    app = create_app(make_settings(readyz_cache_s=0), uncached, CountingStore())
    async with client_for(app) as client:
        for _ in range(5):
            assert (await client.get("/readyz")).status_code == 200
    assert uncached.checks == 5
