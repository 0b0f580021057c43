"""``wear status`` without services: lag arithmetic, quota windows by priority, JSON, the screen."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from rich.console import Console

from processors.quota import Priority, QuotaPolicy
from wear.status_model import (
    Backfill,
    DlqCount,
    GroupLag,
    Quota,
    Reauth,
    Rebuild,
    Status,
    partition_lag,
    quota_windows,
    sorted_groups,
    status_json,
)
from wear.status_view import SECTIONS, render

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def test_lag_is_end_less_the_stored_next_offset() -> None:
    part = partition_lag("t", 0, stored=7, start=0, end=10)
    assert (part.position, part.lag, part.committed) == (7, 3, True)


def test_a_partition_without_a_stored_offset_is_at_its_log_start() -> None:
    part = partition_lag("t", 1, stored=None, start=4, end=10)
    assert (part.position, part.lag, part.committed) == (4, 6, False)


def test_a_stored_offset_below_the_log_start_counts_from_the_start() -> None:
    assert partition_lag("t", 0, stored=2, start=5, end=9).lag == 4


def test_a_stored_offset_at_or_past_the_end_is_no_lag() -> None:
    assert partition_lag("t", 0, stored=10, start=0, end=10).lag == 0
    assert partition_lag("t", 0, stored=0, start=0, end=0).lag == 0


def test_a_groups_lag_is_the_sum_of_its_partitions() -> None:
    group = GroupLag(
        "projection v1 (serving)",
        "g",
        "postgres",
        0,
        (partition_lag("t", 0, 1, 0, 4), partition_lag("t", 1, None, 0, 2), partition_lag("t", 2, 5, 0, 5)),
    )
    assert group.lag == 5


def test_groups_are_shown_by_stage_then_group() -> None:
    a = GroupLag("normalizer", "n", "kafka", 1, ())
    b = GroupLag("fetcher", "f", "kafka", 1, ())
    assert [g.stage for g in sorted_groups([a, b])] == ["fetcher", "normalizer"]


def test_quota_left_to_each_priority_is_its_allowance_less_every_grant_in_the_window() -> None:
    policy = QuotaPolicy(per_minute=100, per_day=10_000, reserve_refetch=0.05, reserve_reconcile=0.15)
    used = {
        "minute": {int(Priority.LIVE): 20, int(Priority.BACKFILL): 60},
        "day": {int(Priority.LIVE): 500, int(Priority.BACKFILL): 6_600},
    }
    minute, day = quota_windows(policy, used)
    assert (minute.window, minute.capacity, minute.used, minute.left) == ("minute", 100, 80, 20)
    by = {p.priority: p for p in minute.priorities}
    assert (by["live"].used, by["live"].allowed, by["live"].left) == (20, 100, 20)
    assert (by["refetch"].allowed, by["refetch"].left) == (95, 15)
    assert (by["reconcile"].allowed, by["reconcile"].left) == (85, 5)
    assert (by["backfill"].used, by["backfill"].allowed, by["backfill"].left) == (60, 70, 0)
    assert (day.used, day.left) == (7_100, 2_900)
    assert {p.priority: p.left for p in day.priorities}["backfill"] == 0  # 7,000 allowed, 7,100 used


def test_an_unused_quota_is_all_left() -> None:
    minute, day = quota_windows(QuotaPolicy(per_minute=100, per_day=10_000), {})
    assert minute.left == 100 and day.left == 10_000
    assert all(p.used == 0 for p in minute.priorities)


def _status() -> Status:
    policy = QuotaPolicy(per_minute=100, per_day=10_000)
    return Status(
        taken_at=NOW,
        groups=(
            GroupLag("fetcher", "fetcher", "kafka", 2, (partition_lag("whoop.webhooks.v1", 0, 3, 0, 3),)),
            GroupLag(
                "projection v1 (serving)",
                "projections.read-models.v1",
                "postgres",
                0,
                (
                    partition_lag("wear.records.v1", 0, 1, 0, 13),
                    partition_lag("wear.records.v1", 1, None, 0, 0),
                ),
            ),
            GroupLag("sync activity", "a", "postgres", 0, (), ("whoop.gone.v1",)),
        ),
        dlqs=(DlqCount("wear.records.v1.dlq", 4), DlqCount("whoop.webhooks.v1.dlq", None)),
        quota=Quota("whoop", quota_windows(policy, {"minute": {0: 3}, "day": {0: 3}})),
        reauth=(Reauth("user-1", 42, NOW),),
        reauth_total=1,
        backfills=(Backfill("job-1", "user-2", "running", ("cycle", "sleep"), 1, 3, 70, NOW),),
        rebuilds=(Rebuild("read-model version", 2, "building", "wear.records.v1", 5, 13, NOW),),
    )


def test_the_json_document_has_every_section_and_parses() -> None:
    document = orjson.loads(orjson.dumps(status_json(_status())))
    assert document["total_lag"] == 12
    groups = {g["group"]: g for g in document["consumer_groups"]}
    projection = groups["projections.read-models.v1"]
    assert (projection["offsets_in"], projection["lag"], projection["members"]) == ("postgres", 12, 0)
    assert [p["lag"] for p in projection["partitions"]] == [12, 0]
    assert groups["a"]["missing_topics"] == ["whoop.gone.v1"]
    assert document["dlq"] == [
        {"topic": "wear.records.v1.dlq", "messages": 4, "exists": True},
        {"topic": "whoop.webhooks.v1.dlq", "messages": None, "exists": False},
    ]
    minute = document["quota"]["windows"][0]
    assert (minute["used"], minute["left"]) == (3, 97)
    assert document["needs_reauth"]["connections"][0]["user_id"] == "user-1"
    assert document["backfills"][0]["records"] == 70
    assert document["rebuilds"][0]["done"] == 5


def test_the_screen_shows_every_section_and_the_numbers() -> None:
    console = Console(record=True, width=200, color_system=None)
    console.print(render(_status()))
    screen = console.export_text()
    for section in SECTIONS:
        assert section in screen
    assert "total lag 12" in screen
    assert "12 0" in screen  # lag per partition of the projection
    assert "0 (stopped)" in screen
    assert "no such topic" in screen
    assert "5/13 (38%)" in screen
    assert "user-1" in screen and "job-1" in screen


def test_empty_sections_say_none() -> None:
    empty = Status(NOW, (), (), Quota("whoop", quota_windows(QuotaPolicy(100, 10_000), {})), (), 0, (), ())
    console = Console(record=True, width=200, color_system=None)
    console.print(render(empty))
    screen = console.export_text()
    assert "Connections needing re-authorization: none" in screen
    assert "Backfills in progress: none" in screen
    assert "Rebuilds in progress: none" in screen
