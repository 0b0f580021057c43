"""``wear users list|show|disconnect|erase`` on the real engines (WHOOP is the simulator).

Each command runs as its own process against the test's schema and topics. What is checked: the
listing shows who is connected and who needs re-authorization, never a token nor a health value;
``show`` counts the member's records per type in the served read models; ``disconnect`` and ``erase``
do what the phone's disconnect and Step 6's erasure do, refuse without ``--yes`` off a terminal, and
end with one line and their exit code on bad input or a service down.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from infra.vault import TokenVault, VaultSettings
from schemas.events import UserDisconnected, UserErased
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, TopicReader, harness
from tests.integration.projections.helpers import apply_batches
from tests.integration.wear.users_cli import CLOSED_KAFKA, CLOSED_POSTGRES, wear, world_env
from tests.unit.projections.factory import T0, Member, history

pytestmark = pytest.mark.integration

TYPE_OF = {"CycleRecorded": "cycle", "SleepRecorded": "sleep", "RecoveryRecorded": "recovery"}


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
        days=3,
        webhooks_enabled=False,
    ) as w:
        yield w


async def _with_records(world: Harness, member: int, days: int = 6) -> dict[str, int]:
    """The member's ``days`` of records applied to the read models; their count per type."""
    records = [
        r for day in history(Member(member), days, start=T0 - timedelta(days=days)) for r in day.records()
    ]
    await apply_batches(world.pool, [records])
    counts = Counter(TYPE_OF.get(type(r).__name__, "workout") for r in records)
    return {t: counts.get(t, 0) for t in ("cycle", "sleep", "recovery", "workout")}


async def _status(world: Harness, user_id: str) -> str | None:
    status: str | None = await world.pool.fetchval(
        "SELECT status FROM whoop_connections WHERE user_id = $1", user_id
    )
    return status


async def test_list_and_show_members_without_tokens_or_health_data(world: Harness) -> None:
    alice, bob = await world.members()
    alice_id, bob_id = await world.connect(alice), await world.connect(bob)
    await world.pool.execute(
        "UPDATE whoop_connections SET status = 'needs_reauth' WHERE user_id = $1", bob_id
    )
    counts = await _with_records(world, alice)
    tokens = await TokenVault(VaultSettings().keyring()).load(world.pool, alice_id)
    assert tokens is not None

    listed = await wear("users", "list", "--json", env=world_env(world))
    table = await wear("users", "list", env=world_env(world))
    reauth = await wear("users", "list", "--status", "needs_reauth", "--json", env=world_env(world))
    shown = await wear("users", "show", str(alice), "--json", env=world_env(world))

    assert (listed.code, table.code, reauth.code, shown.code) == (0, 0, 0, 0), listed.stderr + shown.stderr
    members = {m["user_id"]: m for m in listed.json()["members"]}
    assert set(members) == {alice_id, bob_id}
    assert (members[alice_id]["whoop_user_id"], members[alice_id]["status"]) == (alice, "connected")
    assert (members[bob_id]["status"], members[bob_id]["needs_reauth"]) == ("needs_reauth", True)
    assert members[alice_id]["needs_reauth"] is False
    assert members[alice_id]["connected_at"] is not None
    assert members[alice_id]["last_record_at"] is not None  # the projection applied their records
    assert [m["user_id"] for m in reauth.json()["members"]] == [bob_id]
    assert alice_id in table.stdout and bob_id in table.stdout and "2 members" in table.stdout
    member = shown.json()
    assert (member["user_id"], member["read_model_version"]) == (alice_id, 1)
    assert member["records"] == counts
    assert member["records_applied"] == sum(counts.values())
    for output in (listed.stdout, table.stdout, shown.stdout):
        assert tokens.access_token not in output
        assert tokens.refresh_token is None or tokens.refresh_token not in output
        assert "hrv" not in output and "strain" not in output and "document" not in output


async def test_show_of_an_unknown_user_exits_2(world: Harness) -> None:
    done = await wear("users", "show", "424242", env=world_env(world))

    assert done.code == 2
    assert "unknown user '424242'" in done.error_line()


async def test_disconnect_does_what_the_phones_disconnect_does(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)

    refused = await wear("users", "disconnect", str(member), env=world_env(world))
    assert refused.code == 2
    assert "without --yes when stdin is not a terminal" in refused.error_line()
    assert await _status(world, user_id) == "connected"

    done = await wear("users", "disconnect", str(member), "--yes", "--json", env=world_env(world))

    assert done.code == 0, done.stderr
    assert done.json() == {"user_id": user_id, "status": "disconnected", "api_tokens_revoked": 0}
    assert await _status(world, user_id) == "disconnected"
    assert await TokenVault(VaultSettings().keyring()).load(world.pool, user_id) is None
    async with TopicReader(world.kafka, world.topics.connections) as reader:
        await reader.wait_until(
            lambda: any(isinstance(e, UserDisconnected) and e.user_id == user_id for e in reader.records),
            "UserDisconnected announced",
        )
    again = await wear("users", "disconnect", str(member), "--yes", env=world_env(world))
    assert again.code == 2
    assert "already disconnected" in again.error_line()


async def test_erase_refuses_without_yes_then_erases(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await _with_records(world, member)

    refused = await wear("users", "erase", user_id, env=world_env(world))

    assert refused.code == 2
    assert "refusing to erase without --yes when stdin is not a terminal" in refused.error_line()
    assert await _status(world, user_id) == "connected"
    assert await world.pool.fetchval("SELECT count(*) FROM rm_cycles WHERE user_id = $1", user_id) > 0

    done = await wear("users", "erase", user_id, "--yes", "--json", env=world_env(world))

    assert done.code == 0, done.stderr
    erased = done.json()
    assert (erased["user_id"], erased["status"], erased["step"]) == (user_id, "done", "done")
    assert erased["rows_deleted"]["rm_cycles"] > 0
    assert await _status(world, user_id) is None
    for table in ("rm_cycles", "rm_sleeps", "rm_recoveries", "whoop_tokens"):
        count = await world.pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user_id)  # noqa: S608
        assert count == 0, table
    async with TopicReader(world.kafka, world.topics.connections) as reader:
        await reader.wait_until(
            lambda: any(isinstance(e, UserErased) and e.user_id == user_id for e in reader.records),
            "UserErased announced",
        )
    gone = await wear("users", "show", user_id, env=world_env(world))
    assert gone.code == 2
    assert "unknown user" in gone.error_line()


async def test_kafka_down_exits_1_with_one_line_and_changes_nothing(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    env = world_env(world, KAFKA_BOOTSTRAP_SERVERS=CLOSED_KAFKA)

    disconnected = await wear("users", "disconnect", str(member), "--yes", env=env)
    erased = await wear("users", "erase", str(member), "--yes", env=env)

    for done in (disconnected, erased):
        assert done.code == 1
        assert f"Kafka unreachable or failing at {CLOSED_KAFKA}" in done.error_line()
    assert await _status(world, user_id) == "connected"
    assert await TokenVault(VaultSettings().keyring()).load(world.pool, user_id) is not None


@pytest.mark.parametrize("command", [["list"], ["show", "10129"], ["erase", "10129", "--yes"]])
async def test_postgres_down_exits_1_with_one_line_and_no_password(
    world: Harness, command: list[str]
) -> None:
    done = await wear("users", *command, env=world_env(world, DATABASE_URL=CLOSED_POSTGRES))

    assert done.code == 1
    assert "PostgreSQL unreachable or failing at 127.0.0.1:1/whoop" in done.error_line()
    assert "s3cret-pw" not in done.stderr + done.stdout


async def _on_a_terminal(env: dict[str, str], answer: str, *args: str) -> tuple[int, str]:
    """Run ``wear ARGS`` with a terminal as stdin, typing ``answer``; its exit code and stderr."""
    controller, terminal = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wear",
            *args,
            env=env,
            stdin=terminal,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        os.write(controller, answer.encode() + b"\n")
        _, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        os.close(terminal)
        os.close(controller)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_erase_asks_on_a_terminal(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)

    code, err = await _on_a_terminal(world_env(world), "n", "users", "erase", str(member))

    assert code == 2
    assert f"Erase user {user_id}" in err
    assert "error: not confirmed; nothing erased" in err
    assert await _status(world, user_id) == "connected"

    code, err = await _on_a_terminal(world_env(world), "yes", "users", "erase", str(member))

    assert code == 0, err
    assert await _status(world, user_id) is None
