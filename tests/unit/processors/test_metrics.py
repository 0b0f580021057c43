"""The processors' counters move at their natural points: WHOOP calls, token refreshes, records by type."""

from __future__ import annotations

import pytest

from processors.errors import NeedsReauth, WhoopNotFound
from processors.metrics import REGISTRY, count_records
from processors.quota import Priority
from schemas.keys import record_key
from tests.unit.processors.test_whoop_client import REFRESH, TOKEN, _client, _json

pytestmark = pytest.mark.unit


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_whoop_calls_are_counted_by_priority_and_status_retries_included() -> None:
    calls = "processors_whoop_calls_total"
    before = {
        status: _value(calls, {"priority": "backfill", "status": status}) for status in ("200", "503", "404")
    }
    answers = iter([_json(503), _json(200)])
    client, _, _, _ = _client(lambda r: next(answers), retries=1)
    await client.get("/cycle/1", access_token=TOKEN, priority=Priority.BACKFILL)
    missing, _, _, _ = _client(lambda r: _json(404))
    with pytest.raises(WhoopNotFound):
        await missing.get("/cycle/2", access_token=TOKEN, priority=Priority.BACKFILL)
    assert _value(calls, {"priority": "backfill", "status": "503"}) == before["503"] + 1
    assert _value(calls, {"priority": "backfill", "status": "200"}) == before["200"] + 1
    assert _value(calls, {"priority": "backfill", "status": "404"}) == before["404"] + 1
    await client.aclose()
    await missing.aclose()


async def test_token_refreshes_are_counted_by_outcome() -> None:
    refreshes = "processors_whoop_token_refreshes_total"
    ok_before = _value(refreshes, {"outcome": "ok"})
    reauth_before = _value(refreshes, {"outcome": "reauth"})
    granted = (
        b'{"access_token":"a","expires_in":3600,"refresh_token":"r","scope":"offline","token_type":"bearer"}'
    )
    client, _, _, _ = _client(lambda r: _json(200, granted))
    await client.refresh(REFRESH)
    refused, _, _, _ = _client(lambda r: _json(400, b'{"error":"invalid_grant"}'))
    with pytest.raises(NeedsReauth):
        await refused.refresh(REFRESH)
    assert _value(refreshes, {"outcome": "ok"}) == ok_before + 1
    assert _value(refreshes, {"outcome": "reauth"}) == reauth_before + 1


def test_records_are_counted_by_the_type_in_their_key() -> None:
    records = "processors_normalizer_records_total"
    before = _value(records, {"type": "sleep"}), _value(records, {"type": "unknown"})
    count_records([record_key("u1", "sleep", "s1"), record_key("u2", "sleep", "s2"), None])
    assert _value(records, {"type": "sleep"}) == before[0] + 2
    assert _value(records, {"type": "unknown"}) == before[1] + 1
