"""The pure parts of ``python -m projections rebuild``: progress arithmetic, the lines it prints."""

from __future__ import annotations

from projections.rebuild import (
    Span,
    applied,
    caught_up,
    interrupted_message,
    summary_line,
    total,
    where,
)

G, T = "projections.read-models.v1", "wear.records.v1"
SPANS = [Span(G, T, 0, 0, 100), Span(G, T, 1, 40, 90), Span(G, T, 2, 7, 7)]  # 2: empty (compacted away)


def test_the_total_counts_the_offsets_from_each_log_start_to_its_end() -> None:
    assert total(SPANS) == 100 + 50 + 0
    assert total([]) == 0


def test_nothing_stored_is_nothing_applied_and_not_caught_up() -> None:
    assert applied(SPANS, {}) == 0
    assert not caught_up(SPANS, {})


def test_applied_counts_from_the_log_start_and_stops_at_the_captured_end() -> None:
    stored = {(G, T, 0): 30, (G, T, 1): 60}
    assert applied(SPANS, stored) == 30 + 20
    # records produced after the start go past the captured end: they are not counted
    assert applied(SPANS, {(G, T, 0): 250, (G, T, 1): 90}) == total(SPANS)


def test_caught_up_needs_every_partition_at_its_end_but_an_empty_one_needs_nothing() -> None:
    assert not caught_up(SPANS, {(G, T, 0): 100, (G, T, 1): 89})
    assert caught_up(SPANS, {(G, T, 0): 100, (G, T, 1): 90})
    assert caught_up(SPANS, {(G, T, 0): 130, (G, T, 1): 95})
    assert caught_up([Span(G, T, 0, 0, 0)], {})


def test_offsets_of_another_group_or_topic_do_not_count() -> None:
    other = {("another.group", T, 0): 100, (G, "another.topic", 1): 90}
    assert applied(SPANS, other) == 0
    assert not caught_up(SPANS, other)


def test_a_stored_offset_below_the_log_start_counts_as_none() -> None:
    assert applied([Span(G, T, 1, 40, 90)], {(G, T, 1): 10}) == 0


def test_the_summary_gives_records_time_rate_and_dead_letters() -> None:
    line = summary_line(12_000, 4.0, 3)
    assert line == "rebuilt: 12,000 records in 4.0 s (3,000 records/s), 3 dead-lettered"
    assert summary_line(0, 0.0, 0).startswith("rebuilt: 0 records in 0.0 s (0 records/s)")
    assert summary_line(10, 1.0, 0, activity=5).endswith("; rm_sync_activity from 5 webhooks and documents")


def test_the_interrupted_message_says_both_ways_on() -> None:
    message = interrupted_message(1_500, 10_000)
    assert "1,500 of 10,000" in message
    assert "`python -m projections rebuild` again" in message
    assert "continues from the stored offsets" in message


def test_where_never_shows_the_user_or_password() -> None:
    url = "postgresql://whoop:s3cret@db.internal:6543/whoop?sslmode=require&search_path=t_1"
    assert where(url) == "db.internal:6543/whoop (search_path t_1)"
    assert where("postgresql://whoop@127.0.0.1/whoop") == "127.0.0.1:5432/whoop"
