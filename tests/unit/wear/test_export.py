"""``wear export``'s pure parts: the Parquet schemas, the round trip in memory, options and selection."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from processors.normalize import normalize_document
from schemas.events import Envelope
from schemas.records import RECORD_TYPES, DocumentFetched, RecoveryRecorded, SleepRecorded
from schemas.serde import decode
from tests.integration.processors.renormalize_harness import member_documents
from wear.common import Usage
from wear.export import parse_request, parse_user, parse_window, summary_line
from wear.export_schemas import DOCUMENT_SCHEMA, RECORD_SCHEMAS, record_of, record_table, schema_of
from wear.export_sources import Selection, document_time, read_model_line, record_time
from wear.export_writers import JsonLinesSink, ParquetSink, check_out

pytestmark = pytest.mark.unit


def _docs() -> list[DocumentFetched]:
    return member_documents(0, 4, seed=3)


def _records() -> list[Envelope]:
    return [record for doc in _docs() for record in normalize_document(doc)]


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_each_schema_is_its_contract_field_by_field(name: str) -> None:
    schema = schema_of(name)
    fields = [field.name for field in msgspec.structs.fields(RECORD_TYPES[name])]
    assert schema.names == ["event_type", *fields]
    assert schema.metadata == {b"wear.export.schema": f"{name}/1".encode()}
    assert set(RECORD_SCHEMAS) | {"DocumentFetched"} == set(RECORD_TYPES)


def test_parquet_round_trip_in_memory() -> None:
    records = _records()
    by_type: dict[str, list[Envelope]] = {}
    for record in records:
        by_type.setdefault(record.event_type, []).append(record)
    assert {"CycleRecorded", "SleepRecorded", "RecoveryRecorded", "WorkoutRecorded"} <= set(by_type)
    for name, items in by_type.items():
        buffer = io.BytesIO()
        pq.write_table(record_table(name, items), buffer)
        table = pq.read_table(io.BytesIO(buffer.getvalue()))
        assert table.schema.equals(RECORD_SCHEMAS[name], check_metadata=True)
        assert [record_of(row) for row in table.to_pylist()] == items
    docs = _docs()
    table = record_table("DocumentFetched", docs)
    assert table.schema.equals(DOCUMENT_SCHEMA)
    assert [record_of(row) for row in table.to_pylist()] == docs


def test_sinks_write_partial_files_and_rename_them_at_the_end(tmp_path: Path) -> None:
    records = [record for record in _records() if isinstance(record, SleepRecorded)]
    sink = ParquetSink(tmp_path / "out", ["SleepRecorded", "SleepDeleted"], record_table, row_group=3)
    sink.write("SleepRecorded", records)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "SleepDeleted.parquet.partial",
        "SleepRecorded.parquet.partial",
    ]
    files = sink.finish()
    assert sorted(files) == ["SleepDeleted", "SleepRecorded"]
    written = pq.ParquetFile(files["SleepRecorded"])
    assert written.metadata.num_rows == len(records)
    assert written.metadata.num_row_groups == -(-len(records) // 3)  # bounded row groups
    assert pq.read_table(files["SleepDeleted"]).num_rows == 0
    lines = JsonLinesSink(tmp_path / "x.jsonl", lambda item: item)
    lines.write("*", [b"{}", b"[]"])
    lines.abort()
    assert not list(tmp_path.glob("x.jsonl*"))


def test_selection_window_types_and_times() -> None:
    records = _records()
    sleep = next(r for r in records if isinstance(r, SleepRecorded))
    recovery = next(r for r in records if isinstance(r, RecoveryRecorded))
    assert record_time(sleep) == sleep.start
    assert record_time(recovery) == datetime.fromisoformat(str(recovery.document["created_at"]))
    doc = next(d for d in _docs() if d.resource_type == "recovery")
    assert document_time(doc) == datetime.fromisoformat(str((doc.document or {})["created_at"]))
    everything = Selection()
    assert everything.admits("sleep", None)
    window = Selection(start=sleep.start, end=datetime(2030, 1, 1, tzinfo=UTC), types=frozenset({"sleep"}))
    assert window.admits("sleep", sleep.start)
    assert not window.admits("sleep", None)  # a deletion has no time
    assert not window.admits("recovery", sleep.start)
    assert not window.admits("sleep", datetime(2030, 1, 1, tzinfo=UTC))  # the end is excluded


def test_parse_window_and_user() -> None:
    start, end = parse_window("2026-11-01", "2026-11-30")
    assert start == datetime(2026, 11, 1, tzinfo=UTC)
    assert end == datetime(2026, 12, 1, tzinfo=UTC)  # --end DAY includes that day
    assert parse_window(None, "2026-11-30T06:00:00+01:00") == (None, datetime(2026, 11, 30, 5, tzinfo=UTC))
    assert parse_user("10129") == parse_user(" 10129 ")
    assert parse_user("0D6F1C2E-0000-4000-8000-000000000001") == "0d6f1c2e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"source": "webhooks"}, "unknown --from 'webhooks'"),
        ({"fmt": "csv"}, "unknown --format 'csv'"),
        ({"out": ""}, "--out PATH is required"),
        ({"start": "yesterday"}, "bad date 'yesterday' for --start"),
        ({"end": "2026-11-01T06:00:00"}, "needs its UTC offset"),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "is not before --end"),
        ({"types": ["sleep,heart"]}, "unknown type 'heart'"),
        ({"user": "bob"}, "unknown user 'bob'"),
        ({"out": "/etc/hostname/x.jsonl"}, "is not a directory"),
    ],
)
def test_bad_options_are_refused_in_one_line(tmp_path: Path, args: dict[str, object], reason: str) -> None:
    options: dict[str, object] = {"source": "records", "fmt": "jsonl", "out": str(tmp_path / "x.jsonl")}
    options.update(args)
    source, fmt, out = options.pop("source"), options.pop("fmt"), options.pop("out")
    with pytest.raises(Usage) as refused:
        parse_request(source, fmt, out, **options)  # type: ignore[arg-type]
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


def test_out_must_fit_the_format(tmp_path: Path) -> None:
    with pytest.raises(Usage, match="is a directory"):
        check_out(tmp_path, "jsonl")
    (tmp_path / "file").write_text("")
    with pytest.raises(Usage, match="is a file"):
        check_out(tmp_path / "file", "parquet")
    check_out(tmp_path / "new-dir", "parquet")
    request = parse_request(
        "read-models", "parquet", str(tmp_path / "d"), types=["cycles", "sleep"], user="10129"
    )
    assert request.names() == ["rm_cycles", "rm_sleeps"]
    assert parse_request("records", "jsonl", str(tmp_path / "r.jsonl"), types=["recovery"]).names() == [
        "RecoveryRecorded",
        "RecoveryDeleted",
    ]


def test_lines_and_summary() -> None:
    line = read_model_line(
        "rm_cycles",
        {"user_id": "u", "local_date": date(2026, 11, 1), "document": '{"id": 1}'},
    )
    assert (
        line == b'{"table":"rm_cycles","user_id":"u","local_date":"2026-11-01","document":{"id": 1}}'
    )  # the stored JSON text as it is
    summary = {
        "records": 1234,
        "source": "wear.records.v1",
        "out": "x",
        "seconds": 3.21,
        "written": {"CycleRecorded": 1234, "CycleDeleted": 0},
        "skipped": {"erased": 5, "tombstones": 0},
    }
    assert summary_line(summary) == (
        "exported 1,234 records from wear.records.v1 to x in 3.2 s (CycleRecorded 1,234); skipped: 5 erased"
    )


def test_a_table_refuses_a_value_off_its_schema() -> None:
    sleep = next(r for r in _records() if isinstance(r, SleepRecorded))
    broken = msgspec.structs.replace(sleep, nap="yes")
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        record_table("SleepRecorded", [broken])
    assert decode(msgspec.json.encode(sleep)) == sleep
