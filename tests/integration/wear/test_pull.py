"""``wear pull`` on the real engines: a backfill through the pipeline, followed to its end.

The command runs as its own process; the fetcher runs in the test (fetcher harness), WHOOP is the
simulator. What is checked: the job the command records and announces is the one the fetcher runs,
``--follow`` ends when the job is done with the fetcher's own figures, ``--json`` parses, and bad input
or a service down ends with one line and its exit code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from schemas.events import BackfillRequested
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, TopicReader, harness
from tests.integration.wear.users_cli import CLOSED_KAFKA, CLOSED_POSTGRES, wear, world_env

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    topic_factory: TopicFactory,
    group_id: str,
) -> AsyncIterator[Harness]:
    async with harness(
        kafka_settings,
        postgres_settings,
        db_pool,
        pg_schema,
        topic_factory,
        group_id,
        members=2,
        days=20,
        webhooks_enabled=False,
        history_end="today",
    ) as w:
        yield w


async def _fetcher_figures(world: Harness, job_id: str) -> tuple[int, int]:
    row = await world.pool.fetchrow(
        "SELECT sum(pages) AS pages, sum(records) AS records "
        "FROM fetcher_backfill_progress WHERE job_id = $1",
        job_id,
    )
    assert row is not None
    return int(row["pages"]), int(row["records"])


async def test_pull_follow_reaches_the_end_with_the_fetchers_figures(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.start_fetcher()

    done = await wear("pull", str(member), "--since", "30d", "--follow", "--json", env=world_env(world))

    assert done.code == 0, done.stderr
    assert "Traceback" not in done.stderr
    job = done.json()
    assert job["user_id"] == user_id
    assert job["status"] == "done"
    assert job["requested_by"] == "admin:wear"
    assert job["types"] == ["cycle", "sleep", "recovery", "workout"]
    pages, records = await _fetcher_figures(world, job["job_id"])
    assert records > 0
    assert job["totals"] == {
        "collections": 4,
        "collections_done": 4,
        "pages": pages,
        "records": records,
        "calls": job["totals"]["calls"],
    }
    assert (
        await world.pool.fetchval("SELECT status FROM pull_jobs WHERE job_id = $1", job["job_id"]) == "done"
    )


async def test_pull_requests_then_job_follows_a_recorded_pull(world: Harness) -> None:
    member = (await world.members())[1]
    user_id = await world.connect(member)

    requested = await wear(
        "pull", user_id, "--types", "sleep,recovery", "--since", "10d", env=world_env(world)
    )

    assert requested.code == 0, requested.stderr
    row = await world.pool.fetchrow(
        "SELECT job_id, status, resource_types FROM pull_jobs WHERE user_id = $1", user_id
    )
    assert row is not None
    job_id = row["job_id"]
    assert (row["status"], list(row["resource_types"])) == ("requested", ["sleep", "recovery"])
    assert f"--job {job_id}" in requested.stdout
    async with TopicReader(world.kafka, world.topics.connections) as reader:  # announced, as the route does
        await reader.wait_until(
            lambda: any(isinstance(e, BackfillRequested) and e.job_id == job_id for e in reader.records),
            "BackfillRequested of the pull",
        )
    again = await wear("pull", user_id, env=world_env(world))  # one active pull per member
    assert again.code == 2
    assert job_id in again.error_line()

    await world.start_fetcher()
    followed = await wear("pull", user_id, "--job", job_id, env=world_env(world))

    assert followed.code == 0, followed.stderr
    pages, records = await _fetcher_figures(world, job_id)
    summary = followed.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"pull {job_id}: done in ")
    assert f"2/2 collections, {pages} pages, {records} records" in summary


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["pull", "424242"], "unknown user '424242'"),
        (["pull", "not-a-user"], "neither a user id"),
        (["pull", "{member}", "--since", "yesterday"], "bad date 'yesterday'"),
        (["pull", "{member}", "--since", "2999-01-01"], "in the future"),
        (["pull", "{member}", "--since", "2000-01-01"], "bad pull: the range is longer than ten years"),
        (["pull", "{member}", "--types", "sleeps"], "unknown type 'sleeps'"),
        (["pull", "{member}", "--job", "no-such-job"], "unknown pull 'no-such-job'"),
    ],
)
async def test_bad_input_exits_2_with_one_line(world: Harness, args: list[str], reason: str) -> None:
    member = (await world.members())[0]
    await world.connect(member)

    done = await wear(*(a.replace("{member}", str(member)) for a in args), env=world_env(world))

    assert done.code == 2
    assert reason in done.error_line()
    assert await world.pool.fetchval("SELECT count(*) FROM pull_jobs") == 0


async def test_a_member_not_connected_exits_2(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.pool.execute(
        "UPDATE whoop_connections SET status = 'needs_reauth' WHERE user_id = $1", user_id
    )

    done = await wear("pull", str(member), env=world_env(world))

    assert done.code == 2
    assert "not connected (the WHOOP connection is needs_reauth)" in done.error_line()


async def test_kafka_down_exits_1_with_one_line_and_records_nothing(world: Harness) -> None:
    member = (await world.members())[0]
    await world.connect(member)

    done = await wear("pull", str(member), env=world_env(world, KAFKA_BOOTSTRAP_SERVERS=CLOSED_KAFKA))

    assert done.code == 1
    assert f"Kafka unreachable or failing at {CLOSED_KAFKA}" in done.error_line()
    assert await world.pool.fetchval("SELECT count(*) FROM pull_jobs") == 0


async def test_postgres_down_exits_1_with_one_line_and_no_password(world: Harness) -> None:
    done = await wear("pull", "10129", "--follow", env=world_env(world, DATABASE_URL=CLOSED_POSTGRES))

    assert done.code == 1
    line = done.error_line()
    assert "PostgreSQL unreachable or failing at 127.0.0.1:1/whoop" in line
    assert "s3cret-pw" not in done.stderr + done.stdout
