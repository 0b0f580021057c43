"""The pure parts of redriving the fetcher's letters: the origin a redrive leaves in the queue, the header."""

from __future__ import annotations

import base64

import pytest

from processors.intake import Incoming, NotActionable, origin_of
from schemas.topics import DLQ_REDRIVE_OF_HEADER
from wear.dlq_log import REDRIVE_OF_HEADER

pytestmark = pytest.mark.unit


def test_a_live_event_origin_has_no_redrive_mark() -> None:
    origin = origin_of(Incoming("whoop.webhooks.v1", 1, 5, b"u:webhook:x", b"{}"))
    assert origin == {
        "topic": "whoop.webhooks.v1",
        "partition": 1,
        "offset": 5,
        "key": "u:webhook:x",
        "value_b64": base64.b64encode(b"{}").decode(),
    }


def test_a_redriven_event_origin_names_the_letter_it_came_from() -> None:
    origin = origin_of(Incoming("whoop.webhooks.v1", 1, 5, None, b"{}", redrive_of="2:7"))
    assert origin["redrive_of"] == "2:7" and origin["key"] is None
    assert origin["offset"] == 5  # the event's own place, not the letter's


def test_the_worker_and_wear_agree_on_the_header() -> None:
    assert REDRIVE_OF_HEADER == DLQ_REDRIVE_OF_HEADER == "wear-redrive-of"


def test_not_actionable_keeps_the_intake_error_type_and_reason() -> None:
    error = NotActionable("UnknownMember", "backfill j: user u unknown")
    assert (error.error_type, error.reason) == ("UnknownMember", "backfill j: user u unknown")
    assert str(error) == "UnknownMember: backfill j: user u unknown"
