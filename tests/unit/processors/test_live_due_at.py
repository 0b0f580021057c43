"""When a webhook's live fetch is due: after a short wait on an idle resource, the window in a burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.intake import live_due_at

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=0.25)
IDLE = timedelta(seconds=0.05)


def test_a_resource_never_fetched_waits_only_the_idle_wait() -> None:
    assert live_due_at(NOW, None, WINDOW, IDLE) == NOW + IDLE
    assert live_due_at(NOW, None, WINDOW, timedelta(0)) == NOW


def test_a_resource_fetched_longer_ago_than_the_window_is_idle() -> None:
    assert live_due_at(NOW, NOW - WINDOW, WINDOW, IDLE) == NOW + IDLE
    assert live_due_at(NOW, NOW - timedelta(hours=3), WINDOW, IDLE) == NOW + IDLE


def test_a_webhook_just_after_a_fetch_started_waits_the_window() -> None:
    # a burst (sleep.updated then recovery.updated, a duplicate): the rest shares one later call
    assert live_due_at(NOW, NOW - timedelta(seconds=0.1), WINDOW, IDLE) == NOW + WINDOW
    assert live_due_at(NOW, NOW, WINDOW, IDLE) == NOW + WINDOW


def test_an_idle_wait_as_long_as_the_window_makes_every_fetch_wait_the_window() -> None:
    assert live_due_at(NOW, None, WINDOW, WINDOW) == NOW + WINDOW
    assert live_due_at(NOW, None, WINDOW, timedelta(seconds=5)) == NOW + WINDOW  # never longer
    assert live_due_at(NOW, NOW - timedelta(seconds=0.1), WINDOW, WINDOW) == NOW + WINDOW


def test_no_window_means_at_once_either_way() -> None:
    assert live_due_at(NOW, NOW, timedelta(0), IDLE) == NOW
    assert live_due_at(NOW, None, timedelta(0), IDLE) == NOW
