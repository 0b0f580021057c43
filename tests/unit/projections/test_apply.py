"""The pure projection core: decoding records, folding a batch, the version order, erasures, activity."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from projections.activity import Activity, plan_activity, read_activity
from projections.errors import RecordRejected
from projections.fold import TableChanges, plan_batch
from projections.rows import Purge, read_record
from schemas.events import WebhookReceived
from schemas.records import DocumentFetched
from schemas.serde import decode, encode
from tests.unit.projections.factory import (
    T0,
    Member,
    cycle,
    cycle_deleted,
    history,
    mixed_log,
    recovery,
    recovery_deleted,
    sleep_deleted,
    workout_deleted,
)

ALICE = Member(482913)
DAY = history(ALICE, 1)[0]
WORKOUT = next(day.workout for day in history(ALICE, 10) if day.workout is not None)


def _webhook(user_id: str) -> WebhookReceived:
    return WebhookReceived(
        event_id="e",
        occurred_at=T0,
        user_id=user_id,
        source="s",
        whoop_user_id=1,
        whoop_event_type="sleep.updated",
        resource_id="r",
        whoop_trace_id="t",
        signature_timestamp_ms=1,
    )


def test_read_record_decodes_every_canonical_record() -> None:
    for record in [*DAY.records(), cycle_deleted(ALICE, 1, T0), recovery_deleted(ALICE, 1, None, T0)]:
        assert read_record(b"k", encode(record)) == record


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"k", b"not json", "not JSON"),
        (b"k", b"[1, 2]", "not a JSON object"),
        (b"k", b'{"event_type": "Nope"}', "unknown event_type"),
        (b"k", b'{"event_type": "CycleRecorded"}', "invalid CycleRecorded"),
        (None, None, "tombstone whose key"),
        (b"user:cycle", None, "tombstone whose key"),
        (b"user:thing:1", None, "tombstone whose key"),
        (b":cycle:1", None, "tombstone whose key"),
        (b"user:cycle:abc", None, "not an integer"),
        (b"user:recovery:" + b"9" * 19, None, "not an integer"),
    ],
)
def test_read_record_rejects_what_it_cannot_project(
    key: bytes | None, value: bytes | None, reason: str
) -> None:
    with pytest.raises(RecordRejected, match=reason):
        read_record(key, value, "t", 0, 7)


def test_read_record_rejects_other_events_and_unstorable_values() -> None:
    webhook = _webhook(ALICE.user_id)
    with pytest.raises(RecordRejected, match="does not belong"):
        read_record(b"k", encode(webhook))
    too_big = msgspec.structs.replace(DAY.cycle, cycle_id=2**63)
    with pytest.raises(RecordRejected, match="cycle_id cannot be stored"):
        read_record(b"k", encode(too_big))
    with pytest.raises(RecordRejected, match="timezone_offset cannot be stored"):
        read_record(b"k", encode(msgspec.structs.replace(DAY.sleep, timezone_offset="+01:00\x00")))
    zones = msgspec.structs.replace(WORKOUT, zone_ms=(1, 2, 3, 4, 5, 2**63))
    with pytest.raises(RecordRejected, match="zone_ms cannot be stored"):
        read_record(b"k", encode(zones))
    beyond_64_bits = json.dumps({**msgspec.to_builtins(zones), "zone_ms": [0] * 5 + [2**70]}).encode()
    with pytest.raises(RecordRejected, match="zone_ms cannot be stored"):
        read_record(b"k", beyond_64_bits)


def test_read_record_turns_a_kafka_tombstone_into_an_erasure() -> None:
    assert read_record(b"u1:cycle:42", None) == Purge("u1", "cycle", "42")
    assert read_record(b"u1:sleep:abc", None) == Purge("u1", "sleep", "abc")


def test_the_greatest_version_wins_and_a_deletion_wins_a_tie() -> None:
    rec = DAY.recovery
    later = recovery(ALICE, rec.cycle_id, rec.sleep_id, rec.whoop_updated_at + timedelta(hours=1), score=5.0)
    renormalized = msgspec.structs.replace(later, normalizer_version=2)
    for order in itertools.permutations([rec, later, renormalized, rec]):
        changes = plan_batch(order)
        ((version, row),) = changes.recoveries.upserts.values()
        assert version == (later.whoop_updated_at, 2)
        assert row[10] == 5.0  # recovery_score_pct
    tie = recovery_deleted(ALICE, rec.cycle_id, rec.sleep_id, later.whoop_updated_at, normalizer_version=2)
    changes = plan_batch([renormalized, tie])
    assert not changes.recoveries.upserts
    assert changes.recoveries.deletes == {(ALICE.user_id, rec.cycle_id): (later.whoop_updated_at, 2)}
    changes = plan_batch([tie, renormalized, recovery_deleted(ALICE, rec.cycle_id, None, T0)])
    assert not changes.recoveries.upserts and len(changes.recoveries.deletes) == 1


def test_a_newer_upsert_survives_an_older_deletion_in_the_same_batch() -> None:
    w = WORKOUT
    changes = plan_batch([workout_deleted(ALICE, w.workout_id, w.whoop_updated_at - timedelta(hours=1)), w])
    assert list(changes.workouts.upserts) == [(ALICE.user_id, w.workout_id)]
    assert list(changes.workouts.deletes) == [(ALICE.user_id, w.workout_id)]


def test_a_batch_folds_the_same_way_in_any_order_without_erasures() -> None:
    log = mixed_log([ALICE, Member(9)], days=10)
    reference = plan_batch(log)
    rng = random.Random(3)
    for _ in range(20):
        shuffled = list(log)
        rng.shuffle(shuffled)
        changes = plan_batch(shuffled)
        for table in ("cycles", "sleeps", "recoveries", "workouts"):
            a, b = getattr(changes, table), getattr(reference, table)
            assert (a.upserts.keys(), a.deletes) == (b.upserts.keys(), b.deletes)
            assert {k: v[0] for k, v in a.upserts.items()} == {k: v[0] for k, v in b.upserts.items()}
        assert {u: d.records for u, d in changes.status.items()} == {
            u: d.records for u, d in reference.status.items()
        }


def test_an_erasure_drops_what_came_before_it_in_the_batch() -> None:
    c = DAY.cycle
    key = (ALICE.user_id, c.cycle_id)
    changes = plan_batch(
        [c, cycle_deleted(ALICE, c.cycle_id, T0), Purge(ALICE.user_id, "cycle", str(c.cycle_id))]
    )
    assert changes.cycles.purges == {key} and not changes.cycles.upserts and not changes.cycles.deletes
    changes = plan_batch([Purge(ALICE.user_id, "cycle", str(c.cycle_id)), c])
    assert changes.cycles.purges == {key} and key in changes.cycles.upserts
    for kind, rid in (("sleep", "s"), ("recovery", "7"), ("workout", "w")):
        changes = plan_batch([Purge(ALICE.user_id, kind, rid)])  # type: ignore[arg-type]
        tables: dict[str, TableChanges[Any]] = {
            "sleep": changes.sleeps,
            "recovery": changes.recoveries,
            "workout": changes.workouts,
        }
        table = tables[kind]
        assert table and table.purges
    assert changes.status[ALICE.user_id].records == 1


def test_the_status_keeps_the_latest_times_and_counts_every_record() -> None:
    d1 = sleep_deleted(ALICE, "s", T0 + timedelta(days=9))
    changes = plan_batch([*DAY.records(), d1])
    status = changes.status[ALICE.user_id]
    assert status.records == len(DAY.records()) + 1
    assert status.last_record_at == T0 + timedelta(days=9)
    assert status.last_whoop_update_at == max(r.whoop_updated_at for r in DAY.records())
    assert status.whoop_user_id == ALICE.whoop_user_id


def test_rows_carry_the_document_and_the_recovery_created_at() -> None:
    rec = DAY.recovery
    ((_, row),) = plan_batch([rec]).recoveries.upserts.values()
    assert row[8] == datetime.fromisoformat(str(rec.document["created_at"]))
    bad = msgspec.structs.replace(rec, document={**rec.document, "created_at": "not a time"})
    ((_, row),) = plan_batch([bad]).recoveries.upserts.values()
    assert row[8] == rec.whoop_updated_at
    naive = msgspec.structs.replace(rec, document={**rec.document, "created_at": "2025-10-01T08:00:00"})
    ((_, row),) = plan_batch([naive]).recoveries.upserts.values()
    assert row[8] == datetime(2025, 10, 1, 8, tzinfo=UTC)
    missing = msgspec.structs.replace(rec, document={"cycle_id": 1})
    ((_, row),) = plan_batch([missing]).recoveries.upserts.values()
    assert row[8] == rec.whoop_updated_at and row[-1] == '{"cycle_id":1}'
    open_cycle = cycle(ALICE, 5, T0, None, T0, strain=None)
    ((_, row),) = plan_batch([open_cycle]).cycles.upserts.values()
    assert row[7] is None and row[10] is None


def test_workout_zones_become_a_postgres_array_literal() -> None:
    w = WORKOUT
    ((_, row),) = plan_batch([w]).workouts.upserts.values()
    assert row[20] == "{" + ",".join(map(str, w.zone_ms or ())) + "}"
    ((_, row),) = plan_batch([msgspec.structs.replace(w, zone_ms=None)]).workouts.upserts.values()
    assert row[20] is None


def test_activity_reads_webhooks_and_fetches_and_ignores_the_rest() -> None:
    webhook = _webhook("u1")
    fetched = DocumentFetched(
        event_id="f",
        occurred_at=T0 + timedelta(minutes=1),
        user_id="u1",
        source="s",
        whoop_user_id=1,
        resource_type="sleep",
        resource_id="r",
        fetched_at=T0 + timedelta(seconds=30),
    )
    assert read_activity(encode(webhook)) == Activity("u1", webhook_at=T0)
    assert read_activity(encode(fetched)) == Activity("u1", fetch_at=T0 + timedelta(seconds=30))
    assert read_activity(None) is None
    assert read_activity(b"garbage") is None
    assert read_activity(encode(DAY.cycle)) is None
    assert (
        read_activity(
            b'{"event_type": "WebhookReceived", "user_id": "a:b", "occurred_at": "2025-10-01T00:00:00Z"}'
        )
        is None
    )
    no_fetch_time = (
        b'{"event_type": "DocumentFetched", "user_id": "u2", "occurred_at": "2025-10-01T00:00:00+02:00"}'
    )
    assert read_activity(no_fetch_time) == Activity("u2", fetch_at=datetime(2025, 9, 30, 22, tzinfo=UTC))

    deltas = plan_activity(
        [
            Activity("u1", webhook_at=T0 + timedelta(hours=1)),
            Activity("u1", webhook_at=T0),
            Activity("u1", fetch_at=T0),
            Activity("u1", fetch_at=T0 + timedelta(hours=2)),
            Activity("u2", fetch_at=T0),
        ]
    )
    assert deltas["u1"].last_webhook_at == T0 + timedelta(hours=1)
    assert deltas["u1"].last_fetch_at == T0 + timedelta(hours=2)
    assert (deltas["u1"].webhooks, deltas["u1"].documents) == (2, 2)
    assert (deltas["u2"].webhooks, deltas["u2"].documents, deltas["u2"].last_webhook_at) == (0, 1, None)


def test_read_record_is_the_contracts_reader() -> None:
    for record in mixed_log([ALICE, Member(7)], days=10):
        raw = encode(record)
        assert read_record(b"k", raw) == decode(raw) == record
    # a non-JSON number literal is refused, and the reason names its field
    nan = encode(DAY.recovery).replace(b'"skin_temp_c":33.8', b'"skin_temp_c":NaN')
    assert nan != encode(DAY.recovery)
    with pytest.raises(RecordRejected, match=r"not JSON: `\$.skin_temp_c` is not a finite number"):
        read_record(b"k", nan)
