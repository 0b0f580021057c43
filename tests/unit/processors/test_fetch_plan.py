"""The fetcher's pure decisions: §10.6 per event type, backfill stages, schedules, coalescing, policy."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from infra.appender import AppendFailed
from processors.errors import (
    NeedsReauth,
    QuotaDeferred,
    WhoopBadResponse,
    WhoopRejected,
    WhoopUnauthorized,
    WhoopUnavailable,
)
from processors.fetch_plan import (
    BackfillStage,
    Delete,
    DeleteRecovery,
    Drop,
    Fetch,
    Ignore,
    Park,
    Reject,
    Resume,
    StartBackfill,
    backfill_stages,
    covered,
    cycles_query,
    error_delay,
    is_main_sleep,
    is_pending,
    plan_connection,
    plan_webhook,
    schedule_delay,
    task_failure,
)
from schemas.events import (
    BackfillRequested,
    ConnectionRevoked,
    UserConnected,
    UserDisconnected,
    WebhookReceived,
)
from schemas.identity import user_id_for_whoop_member
from tests.unit.processors.fetch_fakes import T0

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "whoop"
USER = user_id_for_whoop_member(482913)


def _webhook(name: str) -> WebhookReceived:
    body = json.loads((FIXTURES / name).read_text())
    return WebhookReceived(
        event_id="e-1",
        occurred_at=T0,
        user_id=user_id_for_whoop_member(body["user_id"]),
        source="ingest",
        whoop_user_id=body["user_id"],
        whoop_event_type=body["type"],
        resource_id=str(body["id"]),
        whoop_trace_id=body["trace_id"],
        signature_timestamp_ms=1760437512345,
    )


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "webhook_workout_updated.json",
            Fetch("workout", "b2d7e0c4-61a9-4f3e-8c25-7e9a0d4f1b88", frozenset({"workout"})),
        ),
        (
            "webhook_sleep_updated.json",
            Fetch("sleep", "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13", frozenset({"sleep"})),
        ),
        # the id of a v2 recovery event is the SLEEP's UUID: it joins that sleep's work row
        (
            "webhook_recovery_updated.json",
            Fetch("sleep", "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13", frozenset({"recovery"})),
        ),
        ("webhook_workout_deleted.json", Delete("workout", "e4a8c1f0-2b6d-47a9-93e1-5c0b8d7f6a24")),
        ("webhook_sleep_deleted.json", Delete("sleep", "1d6f8b2a-3c5e-4a70-9d1f-7b4e2a8c6f19")),
        ("webhook_recovery_deleted.json", DeleteRecovery("1d6f8b2a-3c5e-4a70-9d1f-7b4e2a8c6f19")),
    ],
)
def test_each_event_type_follows_the_v2_recipe(fixture: str, expected: object) -> None:
    assert plan_webhook(_webhook(fixture)) == expected


def test_a_v1_integer_id_is_rejected_not_fetched() -> None:
    plan = plan_webhook(_webhook("webhook_v1_recovery_updated.json"))
    assert isinstance(plan, Reject) and "not a v2 UUID" in plan.reason


def test_ids_are_lower_cased_so_one_resource_has_one_key() -> None:
    event = msgspec.structs.replace(
        _webhook("webhook_workout_updated.json"), resource_id="B2D7E0C4-61A9-4F3E-8C25-7E9A0D4F1B88"
    )
    assert plan_webhook(event) == Fetch(
        "workout", "b2d7e0c4-61a9-4f3e-8c25-7e9a0d4f1b88", frozenset({"workout"})
    )


def test_backfill_dates_recoveries_by_fetching_sleeps_first() -> None:
    assert backfill_stages(["cycle", "sleep", "recovery", "workout"]) == (
        BackfillStage("sleep", ("recovery",)),
        BackfillStage("cycle"),
        BackfillStage("workout"),
    )
    assert backfill_stages(["recovery"]) == (BackfillStage("recovery"),)
    assert backfill_stages(["workout", "cycle"]) == (BackfillStage("cycle"), BackfillStage("workout"))


def _envelope() -> dict[str, Any]:
    return {"event_id": "c-1", "occurred_at": T0, "user_id": USER, "source": "ingest"}


def test_connection_events_map_to_backfill_park_resume_drop() -> None:
    backfill = BackfillRequested(
        **_envelope(),
        resource_types=("sleep", "recovery"),
        start=T0 - timedelta(days=30),
        end=T0,
        job_id="job-1",
    )
    assert plan_connection(backfill) == StartBackfill(
        "job-1", (BackfillStage("sleep", ("recovery",)),), T0 - timedelta(days=30), T0
    )
    connected = UserConnected(**_envelope(), whoop_user_id=482913, scopes=("offline",))
    assert plan_connection(connected) == Resume()
    revoked = ConnectionRevoked(**_envelope(), whoop_user_id=482913, reason="invalid_grant")
    assert plan_connection(revoked) == Park("invalid_grant")
    gone = UserDisconnected(**_envelope(), whoop_user_id=482913)
    assert plan_connection(gone) == Drop()
    assert isinstance(plan_connection(_webhook("webhook_sleep_updated.json")), Ignore)


def test_schedules_end_or_repeat() -> None:
    schedule = (600.0, 1200.0)
    assert [schedule_delay(n, schedule) for n in range(3)] == [600.0, 1200.0, None]
    assert [error_delay(n, (5.0, 60.0)) for n in range(4)] == [5.0, 60.0, 60.0, 60.0]


def test_an_event_is_covered_only_by_a_fetch_that_started_after_it_plus_skew() -> None:
    assert covered(T0, T0 + timedelta(seconds=1), 0.5)
    assert not covered(T0, T0 + timedelta(seconds=0.4), 0.5)
    assert not covered(None, T0, 0.5)
    assert not covered(T0, None, 0.5)


def test_one_cycle_page_holds_the_cycle_a_sleep_closes_and_the_one_it_opens() -> None:
    sleep = json.loads((FIXTURES / "sleep_main_scored.json").read_text())
    assert cycles_query(sleep) == {
        "start": "2025-10-14T02:41:07.312Z",
        "end": "2025-10-14T02:41:07.313Z",
        "limit": 2,
    }
    assert cycles_query({"start": None}) is None
    assert is_main_sleep(sleep) and not is_pending(sleep)
    assert is_pending(json.loads((FIXTURES / "sleep_pending.json").read_text()))
    assert not is_main_sleep(json.loads((FIXTURES / "sleep_nap_scored.json").read_text()))


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (QuotaDeferred("no budget", 3.0), "defer"),
        (WhoopUnavailable("503"), "defer"),
        (AppendFailed("kafka"), "defer"),
        (ConnectionResetError(), "defer"),
        (NeedsReauth("gone", "invalid_grant"), "park"),
        (WhoopUnauthorized("401 twice"), "park"),
        (WhoopRejected("400"), "dead_letter"),
        (WhoopBadResponse("not json"), "dead_letter"),
        (KeyError("bug"), "dead_letter"),
    ],
)
def test_one_policy_decides_every_failure(error: Exception, outcome: str) -> None:
    assert task_failure(error) == outcome
