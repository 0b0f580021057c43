"""``wear tail`` on real Kafka and PostgreSQL: sealed records opened and decoded in order, one line each."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from infra.member_keys import MemberKeys
from infra.settings import KafkaSettings
from infra.vault import VaultSettings
from schemas.records import CycleRecorded, RecoveryRecorded, SleepRecorded, WorkoutRecorded
from schemas.serde import encode
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import with_search_path
from tests.integration.projections.helpers import key_of, produce
from tests.integration.wear.tmux_session import Terminal, script
from tests.unit.projections.factory import Member, history

ALICE, BOB, CAROL = Member(820001), Member(820002), Member(820003)
Record = CycleRecorded | SleepRecorded | RecoveryRecorded | WorkoutRecorded


class Tail:
    """This test's records topic and schema, and the environment that points ``wear`` at them."""

    def __init__(self, kafka: KafkaSettings, database_url: str, records: str) -> None:
        self.kafka = kafka
        self.database_url = database_url
        self.records = records

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PIPELINE_ENV": "dev",
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka.kafka_bootstrap_servers,
                "DATABASE_URL": self.database_url,
                "PROCESSORS_RECORDS_TOPIC": self.records,
            }
        )
        env.update(overrides)
        return env

    async def start(self, *args: str, **overrides: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wear",
            "tail",
            *args,
            env=self.env(**overrides),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str, **overrides: str) -> tuple[int, str, str]:
        process = await self.start(*args, **overrides)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def tail(
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    database_url: str,
    pg_schema: str,
    db_pool: asyncpg.Pool,
) -> Tail:
    records = await topic_factory("wear.records.v1", partitions=3)
    await db_pool.execute(
        "INSERT INTO whoop_connections (user_id, whoop_user_id, status) VALUES ($1, $2, 'connected'), "
        "($3, $4, 'connected')",
        ALICE.user_id,
        ALICE.whoop_user_id,
        BOB.user_id,
        BOB.whoop_user_id,
    )
    return Tail(kafka_settings, with_search_path(database_url, pg_schema), records)


async def _produce_sealed(
    kafka_settings: KafkaSettings, pool: asyncpg.Pool, topic: str, records: Sequence[Record]
) -> None:
    """Produce ``records`` sealed with their members' data keys, as the normalizer writes them."""
    keys = MemberKeys(VaultSettings().keyring())
    data_keys: dict[str, bytes] = {}
    pairs = []
    for record in records:
        if record.user_id not in data_keys:
            data_keys[record.user_id] = await keys.ensure(pool, record.user_id)
        key = data_keys[record.user_id]
        pairs.append((key_of(record), MemberKeys.seal(key, record.user_id, encode(record))))
    await produce(kafka_settings, topic, pairs)


def _wire(record: Record) -> dict[str, Any]:
    """A record as its JSON on the topic reads back (tuples as lists)."""
    data: dict[str, Any] = orjson.loads(encode(record))
    return data


def _lines(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


def _mine(lines: list[dict[str, Any]], member: Member) -> list[dict[str, Any]]:
    return [line["event"] for line in lines if line["event"] and line["event"]["user_id"] == member.user_id]


async def test_tail_from_the_beginning_shows_every_record_opened_and_decoded_in_order(
    tail: Tail, kafka_settings: KafkaSettings, db_pool: asyncpg.Pool
) -> None:
    alice = [r for day in history(ALICE, 3) for r in day.records()]
    bob = [r for day in history(BOB, 2) for r in day.records()]
    carol = [r for day in history(CAROL, 1) for r in day.records()]
    await _produce_sealed(kafka_settings, db_pool, tail.records, [*alice, *bob, *carol])
    await MemberKeys(VaultSettings().keyring()).destroy(db_pool, CAROL.user_id)  # Carol erased
    await produce(kafka_settings, tail.records, [(key_of(alice[0]), None)])  # a tombstone

    code, out, err = await tail.run(tail.records, "--from-beginning", "--until-idle", "2", "--json")
    assert code == 0, err
    lines = _lines(out)
    assert len(lines) == len(alice) + len(bob) + len(carol) + 1
    assert _mine(lines, ALICE) == [_wire(r) for r in alice]  # opened, decoded, in order
    assert _mine(lines, BOB) == [_wire(r) for r in bob]
    kinds = [line["kind"] for line in lines]
    assert kinds.count("erased") == len(carol) and kinds.count("tombstone") == 1
    assert kinds.count("event") == len(alice) + len(bob)
    assert "following" in err


async def test_tail_of_one_user_shows_only_that_users_records(
    tail: Tail, kafka_settings: KafkaSettings, db_pool: asyncpg.Pool
) -> None:
    alice = [r for day in history(ALICE, 2) for r in day.records()]
    bob = [r for day in history(BOB, 2) for r in day.records()]
    await _produce_sealed(kafka_settings, db_pool, tail.records, [*alice, *bob])

    code, out, err = await tail.run(
        tail.records, "--user", str(ALICE.whoop_user_id), "--from-beginning", "--until-idle", "2", "--json"
    )
    assert code == 0, err
    lines = _lines(out)
    assert [line["event"] for line in lines] == [_wire(r) for r in alice]

    code, out, err = await tail.run(tail.records, "--user", BOB.user_id, "--from-beginning", "--max", "3")
    assert code == 0, err
    shown = out.splitlines()
    assert len(shown) == 3
    for line, record in zip(shown, bob, strict=False):
        assert f"{record.event_type} user={BOB.user_id} " in line
        assert ALICE.user_id not in line


async def test_tail_follows_new_records_live_and_ctrl_c_ends_it_with_exit_0(
    tail: Tail, kafka_settings: KafkaSettings, db_pool: asyncpg.Pool
) -> None:
    old = history(ALICE, 1)[0].records()
    await _produce_sealed(kafka_settings, db_pool, tail.records, old)  # before the tail: not shown
    process = await tail.start(tail.records, "--json", "--max", "3")
    assert process.stderr is not None
    assert "following" in (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
    new = [r for day in history(BOB, 1, seed=7) for r in day.records()][:3]
    await _produce_sealed(kafka_settings, db_pool, tail.records, new)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    assert [line["event"] for line in _lines(out.decode())] == [_wire(r) for r in new]

    endless = await tail.start(tail.records)
    assert endless.stderr is not None
    assert "following" in (await asyncio.wait_for(endless.stderr.readline(), 60)).decode()
    endless.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(endless.communicate(), 30)
    assert endless.returncode == 0
    assert b"Traceback" not in err


async def test_unknown_topics_and_users_are_bad_input(tail: Tail) -> None:
    for args, reason in (
        (("whoop.nope.v1",), "unknown topic whoop.nope.v1"),
        ((tail.records + ".g7",), "does not exist on Kafka"),
        ((tail.records, "--user", "no-such-user"), "unknown user no-such-user"),
    ):
        code, out, err = await tail.run(*args, "--max", "1")
        assert code == 2, (args, err)
        assert out == "" and err.strip().count("\n") == 0 and reason in err, err
    code, out, err = await tail.run(tail.records, PIPELINE_ENV="production")  # the public key would open
    assert code == 2 and out == "" and "TOKEN_VAULT_KEYS holds the public development key" in err


async def test_tail_with_kafka_unreachable_is_one_line_and_exit_1(tail: Tail) -> None:
    code, out, err = await tail.run(tail.records, "--max", "1", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert code == 1
    assert out == "" and err.strip().count("\n") == 0 and "Kafka unreachable" in err
    assert "Traceback" not in err


async def test_a_terminal_session_of_tail_into_a_file_shows_the_catch_up_progress(
    tail: Tail, kafka_settings: KafkaSettings, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    alice = [r for day in history(ALICE, 400) for r in day.records()]  # several batches of 500: a rate
    await _produce_sealed(kafka_settings, db_pool, tail.records, alice)
    out = tmp_path / "records.jsonl"
    command = (
        f"{shlex.quote(sys.executable)} -m wear tail {tail.records} --from-beginning --until-idle 1 --json"
        f" > {shlex.quote(str(out))}"
    )
    terminal = Terminal()
    try:
        await terminal.start("tail", script(tmp_path / "tail.sh", tail.env(), command, "TAIL"))
        screen = await terminal.wait_for_text("tail", "TAIL=")
        assert "TAIL=0" in screen and "Traceback" not in screen
        assert "catching up" in screen and f"{len(alice)}/{len(alice)}" in screen
        assert "records/s" in screen and "ETA" in screen
    finally:
        await terminal.close()
    assert [line["event"] for line in _lines(out.read_text())] == [_wire(r) for r in alice]
