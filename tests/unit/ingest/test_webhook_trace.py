"""The webhook's trace at the edge: its append and its log lines run in WHOOP's trace id and our user id,
and an error answer names that trace id (and logs it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from infra.logs import Trace, TraceFilter, current_trace
from ingest.app import create_app
from schemas.identity import user_id_for_whoop_member
from tests.support.ingest_fakes import FakePublisher, NoStore, client_for, make_settings, signed_headers
from tests.unit.ingest.test_webhook_route import BODY, PATH  # BODY: trace_id t-1, member 482913


class TracingPublisher(FakePublisher):
    """Remembers the trace each append ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.traces: list[Trace | None] = []

    async def append(self, topic: str, key: bytes, value: bytes | None) -> None:
        self.traces.append(current_trace())
        await super().append(topic, key, value)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(TraceFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    ingest = logging.getLogger("ingest")
    level = ingest.level
    ingest.addHandler(handler)
    ingest.setLevel(logging.DEBUG)
    yield handler
    ingest.removeHandler(handler)
    ingest.setLevel(level)


async def test_the_append_runs_in_the_webhooks_trace() -> None:
    publisher = TracingPublisher()
    async with client_for(create_app(make_settings(), publisher, NoStore())) as client:
        response = await client.post(PATH, content=BODY, headers=signed_headers(BODY))
    assert response.status_code == 204
    assert publisher.traces == [Trace("t-1", user_id_for_whoop_member(482913))]
    assert current_trace() is None


async def test_a_503_names_the_webhooks_trace_id_and_every_line_carries_it(lines: _Lines) -> None:
    publisher = TracingPublisher()
    publisher.fail = True
    async with client_for(create_app(make_settings(), publisher, NoStore())) as client:
        response = await client.post(PATH, content=BODY, headers=signed_headers(BODY))
    assert response.status_code == 503
    assert response.json()["error"]["trace_id"] == "t-1"
    about = [r for r in lines.records if r.name.startswith("ingest.")]
    assert {r.getMessage() for r in about} >= {
        "webhook t-1 not appended: kafka_timeout",
        "answered 503 kafka_unavailable",
    }
    assert all(getattr(r, "trace_id", None) == "t-1" for r in about), [
        (r.name, r.getMessage()) for r in about
    ]


async def test_an_error_outside_a_trace_logs_the_fresh_trace_id_it_answers(lines: _Lines) -> None:
    async with client_for(create_app(make_settings(), FakePublisher(), NoStore())) as client:
        response = await client.post(PATH, content=BODY, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    trace_id = response.json()["error"]["trace_id"]
    [answered] = [r for r in lines.records if r.getMessage().startswith("answered 401")]
    assert getattr(answered, "trace_id", None) == trace_id and answered.levelno == logging.DEBUG
