"""``wear export`` on the real engines: round trips in both formats, filters, bad input, services down."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pyarrow.parquet as pq
import pytest

from infra.settings import KafkaSettings
from projections.read_model_ddl import VERSIONED_TABLES
from schemas.events import Envelope
from schemas.records import RecoveryRecorded, SleepRecorded
from schemas.serde import decode, encode
from tests.conftest import TopicFactory
from tests.integration.projections.helpers import apply_batches
from tests.integration.wear.export_harness import World, export, fill, make_world
from wear.export_schemas import DOCUMENT_SCHEMA, READ_MODEL_SCHEMAS, RECORD_SCHEMAS, record_of

pytestmark = pytest.mark.integration

RECORD_FILES = sorted(RECORD_SCHEMAS)


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    db_pool: asyncpg.Pool,
    database_url: str,
    pg_schema: str,
) -> AsyncIterator[World]:
    records = await topic_factory("wear.records.v1", partitions=3)
    documents = await topic_factory("whoop.documents.v1", partitions=3)
    made = make_world(kafka_settings, db_pool, database_url, pg_schema, records, documents)
    await fill(made)
    yield made


def _by_type(records: list[Envelope]) -> dict[str, list[Envelope]]:
    found: dict[str, list[Envelope]] = {}
    for record in records:
        found.setdefault(record.event_type, []).append(record)
    return found


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _sorted(records: list[Envelope]) -> list[Envelope]:
    return sorted(records, key=lambda record: record.event_id)


async def test_records_jsonl_round_trip(world: World, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    done = await export(world, "--from", "records", "--format", "jsonl", "--out", str(out), "--json")
    assert done.code == 0, done.stderr
    lines = out.read_bytes().splitlines()
    expected = world.all_records()
    # the records as they are: each line is the canonical JSON written on the topic
    assert Counter(lines) == Counter(encode(record) for record in expected)
    assert _sorted([decode(line) for line in lines]) == _sorted(expected)
    summary = done.summary()
    assert summary["source"] == world.records_topic
    assert summary["records"] == len(expected)
    assert summary["skipped"]["erased"] == world.erased_records
    assert summary["skipped"]["tombstones"] == 1
    assert summary["written"] == {name: len(_by_type(expected).get(name, [])) for name in summary["written"]}
    assert summary["read"] == len(expected) + world.erased_records + 1
    assert summary["files"] == {"*": str(out)}
    assert not [name for name in _names(tmp_path) if name.endswith(".partial")]


async def test_records_parquet_round_trip(world: World, tmp_path: Path) -> None:
    out = tmp_path / "parquet"
    done = await export(world, "--from", "records", "--format", "parquet", "--out", str(out))
    assert done.code == 0, done.stderr
    assert done.stdout.startswith(f"exported {len(world.all_records())} records from {world.records_topic}")
    assert _names(out) == [f"{name}.parquet" for name in RECORD_FILES]
    expected = _by_type(world.all_records())
    assert "WorkoutDeleted" in expected
    for name in RECORD_FILES:
        table = pq.read_table(out / f"{name}.parquet")
        assert table.schema.equals(RECORD_SCHEMAS[name], check_metadata=True), name
        back = [record_of(row) for row in table.to_pylist()]
        assert _sorted(back) == _sorted(expected.get(name, [])), name


async def test_filters_user_window_and_types(world: World, tmp_path: Path) -> None:
    user, records = next(iter(world.records.items()))
    start, end = datetime(2025, 11, 16, tzinfo=UTC), datetime(2025, 11, 18, 12, tzinfo=UTC)

    def wanted(record: Envelope) -> bool:
        if isinstance(record, SleepRecorded):
            moment = record.start
        elif isinstance(record, RecoveryRecorded):
            moment = datetime.fromisoformat(str(record.document["created_at"])).astimezone(UTC)
        else:
            return False
        return start <= moment < end

    expected = [record for record in records if wanted(record)]
    assert 0 < len(expected) < len([r for r in records if isinstance(r, SleepRecorded | RecoveryRecorded)])
    out = tmp_path / "some.jsonl"
    done = await export(
        world,
        "--from", "records", "--format", "jsonl", "--out", str(out), "--json",
        "--user", user, "--types", "sleep", "--types", "recovery",
        "--start", "2025-11-16", "--end", "2025-11-18T12:00:00Z",
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert Counter(out.read_bytes().splitlines()) == Counter(encode(record) for record in expected)
    summary = done.summary()
    assert set(summary["written"]) == {"SleepRecorded", "SleepDeleted", "RecoveryRecorded", "RecoveryDeleted"}
    assert summary["records"] == len(expected)
    assert summary["read"] <= len(world.all_records()) + world.erased_records + 1


async def test_documents_round_trip_both_formats(world: World, tmp_path: Path) -> None:
    docs = [doc for doc in world.all_documents() if doc.resource_type == "workout"]
    out = tmp_path / "docs.jsonl"
    done = await export(
        world, "--from", "documents", "--types", "workouts", "--format", "jsonl", "--out", str(out), "--json"
    )
    assert done.code == 0, done.stderr
    assert Counter(out.read_bytes().splitlines()) == Counter(encode(doc) for doc in docs)
    assert done.summary()["skipped"]["erased"] > 0  # the erased member's workouts
    folder = tmp_path / "docs"
    done = await export(world, "--from", "documents", "--format", "parquet", "--out", str(folder))
    assert done.code == 0, done.stderr
    table = pq.read_table(folder / "DocumentFetched.parquet")
    assert table.schema.equals(DOCUMENT_SCHEMA, check_metadata=True)
    assert _sorted([record_of(row) for row in table.to_pylist()]) == _sorted(list(world.all_documents()))


async def test_read_models_both_formats(world: World, tmp_path: Path) -> None:
    recorded = [r for r in world.all_records() if not r.event_type.endswith("Deleted")]
    await apply_batches(world.pool, [recorded])  # type: ignore[list-item] # Recorded, as the worker applies
    counts = {
        table: await world.pool.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
        for table in READ_MODEL_SCHEMAS
    }
    assert all(counts.values())
    folder = tmp_path / "rm"
    done = await export(world, "--from", "read-models", "--format", "parquet", "--out", str(folder), "--json")
    assert done.code == 0, done.stderr
    assert done.summary()["source"] == "read-model version 1"
    assert done.summary()["written"] == counts
    sleeps = pq.read_table(folder / "rm_sleeps.parquet").to_pylist()
    stored = {
        row["sleep_id"]: row
        for row in await world.pool.fetch("SELECT *, document::text AS doc FROM rm_sleeps")
    }
    for row in sleeps:
        db_row = stored[row["sleep_id"]]
        assert orjson.loads(row["document"]) == orjson.loads(db_row["doc"])
        assert row["start_at"] == db_row["start_at"]
        assert row["asleep_ms"] == db_row["asleep_ms"]
    out = tmp_path / "rm.jsonl"
    done = await export(
        world, "--from", "read-models", "--types", "cycle", "--format", "jsonl", "--out", str(out)
    )
    assert done.code == 0, done.stderr
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(lines) == counts["rm_cycles"]
    assert {line["table"] for line in lines} == {"rm_cycles"}
    assert isinstance(lines[0]["document"], dict)


async def test_read_model_schemas_match_the_tables(db_pool: asyncpg.Pool) -> None:
    for table, schema in READ_MODEL_SCHEMAS.items():
        assert table in VERSIONED_TABLES
        columns = await db_pool.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
        assert {row["column_name"] for row in columns} - {"long_span"} == set(schema.names), table


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--user", "4b1c0a52-0000-4000-8000-00000000abcd"), "unknown user"),
        (("--user", "not-a-user"), "unknown user"),
        (("--start", "2025-02-30"), "bad date"),
        (("--start", "2025-11-20", "--end", "2025-11-10"), "is not before --end"),
        (("--types", "sleep,steps"), "unknown type 'steps'"),
        (("--out", "/etc/hostname/out.jsonl"), "cannot be written"),
        (("--from", "webhooks"), "unknown --from 'webhooks'"),
        (("--format", "csv"), "unknown --format 'csv'"),
    ],
)
async def test_bad_input_exits_2_with_one_line(
    world: World, tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    base = {"--from": "records", "--format": "jsonl", "--out": str(tmp_path / "x.jsonl")}
    extra = list(args)
    for option in list(base):
        if option in extra:
            del base[option]
    done = await export(world, *[item for pair in base.items() for item in pair], *extra)
    assert done.code == 2, done
    assert len(done.error_lines) == 1, done.stderr
    assert reason in done.error_lines[0]
    assert "Traceback" not in done.stderr
    assert not _names(tmp_path)


async def test_kafka_down_exits_1_with_one_line(world: World, tmp_path: Path) -> None:
    out = tmp_path / "p"
    done = await export(
        world,
        "--from",
        "records",
        "--format",
        "parquet",
        "--out",
        str(out),
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
    )
    assert done.code == 1, done
    assert done.error_lines == ["error: Kafka unreachable or failing at 127.0.0.1:1: KafkaConnectionError"]
    assert not out.exists() or not _names(out)


async def test_postgres_down_exits_1_without_the_password(world: World, tmp_path: Path) -> None:
    done = await export(
        world,
        "--from", "read-models", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"),
        DATABASE_URL="postgresql://whoop:s3cret-pw@127.0.0.1:1/whoop",
    )  # fmt: skip
    assert done.code == 1, done
    assert len(done.error_lines) == 1, done.stderr
    assert done.error_lines[0].startswith("error: PostgreSQL unreachable or failing at 127.0.0.1:1/whoop")
    assert "s3cret-pw" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
