"""The pure parts of ``python -m projections rebuild``: offsets arithmetic and the lines it prints."""

from __future__ import annotations

from projections.commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    Failed,
    Interrupted,
    Refused,
    where,
)
from projections.rebuild_console import aftermath, ended_early, interrupted_message, summary_line
from projections.replay_offsets import Span, applied, caught_up, lagging, total

G, T = "read-models-v2", "wear.records.v1"
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
    other = {("projections.read-models.v1", T, 0): 100, (G, "another.topic", 1): 90}
    assert applied(SPANS, other) == 0
    assert not caught_up(SPANS, other)


def test_a_stored_offset_below_the_log_start_counts_as_none() -> None:
    assert applied([Span(G, T, 1, 40, 90)], {(G, T, 1): 10}) == 0


def test_lagging_names_each_partition_behind_and_by_how_much() -> None:
    assert lagging({0: 10, 1: 5}, {0: 10, 1: 8}, {}) == {1: 3}
    assert lagging({0: 12, 1: 9}, {0: 10, 1: 8}, {}) == {}  # ahead is caught up
    assert lagging({}, {0: 4}, {}) == {0: 4}  # nothing stored, nothing applied


def test_a_partition_never_stored_is_at_its_log_start() -> None:
    # retention trimmed partition 2 below 40 before the rebuild began: what the old version stored
    # there (30) is not behind a version that could start no lower
    assert lagging({0: 10}, {0: 10, 2: 30}, {2: 40}) == {}
    assert lagging({0: 10}, {0: 10, 2: 50}, {2: 40}) == {2: 10}


def test_the_summary_gives_records_time_rate_dead_letters_and_the_switch() -> None:
    line = summary_line(12_000, 4.0, 3, 2, (1, 2))
    assert line == (
        "rebuilt: 12,000 records in 4.0 s (3,000 records/s), 3 dead-lettered, 2 skipped (member erased); "
        "switched from version 1 to version 2"
    )
    assert summary_line(0, 0.0, 0, 0, (2, 3)).startswith("rebuilt: 0 records in 0.0 s (0 records/s)")
    assert summary_line(10, 1.0, 0, 0, (1, 2), activity=5).endswith(
        "; rm_sync_activity from 5 webhooks and documents"
    )


def test_what_an_early_end_leaves_and_the_way_on() -> None:
    assert aftermath(None, verified=False) == "nothing changed"
    assert (
        aftermath(3, verified=False)
        == "version 3 keeps what it applied; run the same command again to resume"
    )
    assert aftermath(3, verified=True) == (
        "version 3 is verified and not served: `python -m projections switch 3` serves it"
    )


def test_the_interrupted_message_says_how_far_and_how_to_resume() -> None:
    assert interrupted_message(1_500, 10_000, 2) == (
        "interrupted after 1,500 of 10,000 offsets: version 2 keeps what it applied; "
        "run the same command again to resume"
    )
    assert interrupted_message(0, 10, None) == "interrupted: nothing changed"
    assert interrupted_message(10, 10, 2, verified=True).startswith("interrupted: version 2 is verified")


def test_where_never_shows_the_user_or_password() -> None:
    url = "postgresql://whoop:s3cret@db.internal:6543/whoop?sslmode=require&search_path=t_1"
    assert where(url) == "db.internal:6543/whoop (search_path t_1)"
    assert where("postgresql://whoop@127.0.0.1/whoop") == "127.0.0.1:5432/whoop"


def test_a_run_that_ends_early_exits_with_its_code_and_one_line() -> None:
    assert ended_early(Refused("a rebuild is already running"), 0, 0, None, False) == (
        EXIT_REFUSED,
        "rebuild refused: a rebuild is already running",
    )
    code, line = ended_early(Failed("Kafka at 127.0.0.1:9092 is unreachable"), 5, 10, 3, False)
    assert code == EXIT_FAILED
    assert line == f"rebuild failed: Kafka at 127.0.0.1:9092 is unreachable; {aftermath(3, False)}"
    assert ended_early(Interrupted(), 5, 10, 3, False) == (EXIT_INTERRUPTED, interrupted_message(5, 10, 3))
