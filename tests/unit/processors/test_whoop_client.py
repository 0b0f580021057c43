"""``WhoopClient`` against ``httpx.MockTransport``: headers, timeouts, retries, 429, errors, refresh."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from infra.settings import WhoopAppSettings
from processors.errors import (
    NeedsReauth,
    QuotaDeferred,
    TokenRefreshUnavailable,
    WhoopBadResponse,
    WhoopNotFound,
    WhoopRejected,
    WhoopUnauthorized,
    WhoopUnavailable,
)
from processors.quota import Priority
from processors.settings import FetcherSettings
from processors.whoop_client import WhoopClient, parse_reset
from tests.unit.processors.fetch_fakes import ManualClock, RecordingQuota

TOKEN = "Zq3v9XrP0aLw5Tn2HcY8uJk1Ms4GfBd7Ee6Vo0Ri2Wl.Qp8Na3Lx6Tz1Ub9Yc4Hd7Jf2Kg5Mh0Ok3Pr6St9Vw2X"
REFRESH = "Ty5Ru8Ie1Wq4Ea7Sd0Fg3Hj6Kl9Zx2Cv5Bn8Mq1Aw4E.Rt7Yu0Io3Pa6Sd9Fg2Hj5Kl8Zx1Cv4Bn7Mq0Ws3Ed6R"
WORKOUT = b'{"id":"b2d7e0c4-61a9-4f3e-8c25-7e9a0d4f1b88","score_state":"SCORED"}'
Handler = Callable[[httpx.Request], httpx.Response]


def _client(
    handler: Handler, quota: RecordingQuota | None = None, **settings: object
) -> tuple[WhoopClient, RecordingQuota, ManualClock, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    quota = quota or RecordingQuota()
    clock = ManualClock()
    client = WhoopClient.create(
        WhoopAppSettings(whoop_api_base_url="https://api.prod.whoop.com"),
        FetcherSettings(**settings),  # type: ignore[arg-type]
        quota,
        clock,
        transport=httpx.MockTransport(recording),
    )
    return client, quota, clock, seen


def _json(status: int, body: bytes = b"{}", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": "application/json", **headers})


async def test_a_get_sends_the_bearer_token_an_explicit_user_agent_and_has_timeouts() -> None:
    client, quota, _, seen = _client(lambda r: _json(200, WORKOUT), user_agent="pipeline-test/1")
    doc = await client.get("/activity/workout/abc", access_token=TOKEN, priority=Priority.LIVE)
    assert doc["score_state"] == "SCORED"
    [request] = seen
    assert request.url.path == "/developer/v2/activity/workout/abc"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"] == "pipeline-test/1"
    timeout = request.extensions["timeout"]
    assert timeout == {"connect": 5.0, "read": 15.0, "write": 15.0, "pool": 15.0}
    assert quota.granted == [Priority.LIVE]
    await client.aclose()


async def test_collection_queries_keep_nextToken_camel_case() -> None:
    client, _, _, seen = _client(lambda r: _json(200, b'{"records":[],"next_token":null}'))
    await client.get(
        "/activity/sleep",
        access_token=TOKEN,
        priority=Priority.BACKFILL,
        params={"limit": 25, "nextToken": "eyIkIjoib0AxIiwibyI6MjV9"},
    )
    assert parse_qs(seen[0].url.query.decode()) == {
        "limit": ["25"],
        "nextToken": ["eyIkIjoib0AxIiwibyI6MjV9"],
    }


async def test_5xx_and_timeouts_are_retried_with_bounded_jitter_each_attempt_taking_budget() -> None:
    answers: list[httpx.Response | Exception] = [
        _json(503),
        httpx.ReadTimeout("slow"),
        _json(500),
        _json(200, WORKOUT),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client, quota, clock, seen = _client(handler, retries=3, retry_base_s=1.0, retry_max_s=3.0)
    await client.get("/activity/workout/abc", access_token=TOKEN, priority=Priority.REFETCH)
    assert len(seen) == 4
    assert quota.granted == [Priority.REFETCH] * 4
    assert len(clock.slept) == 3
    assert all(0 <= s <= cap for s, cap in zip(clock.slept, (1.0, 2.0, 3.0), strict=True))


async def test_a_persistent_5xx_gives_up_after_the_retries_as_retriable() -> None:
    client, _, _, seen = _client(lambda r: _json(502), retries=2)
    with pytest.raises(WhoopUnavailable) as caught:
        await client.get("/cycle/1", access_token=TOKEN, priority=Priority.LIVE)
    assert len(seen) == 3
    assert caught.value.retriable


async def test_a_429_pauses_the_shared_bucket_until_the_reset_and_is_not_retried_in_place() -> None:
    client, quota, _, seen = _client(
        lambda r: _json(429, b'{"error":"Too Many Requests"}', **{"X-RateLimit-Reset": "17"})
    )
    with pytest.raises(QuotaDeferred) as caught:
        await client.get("/cycle/1", access_token=TOKEN, priority=Priority.LIVE)
    assert caught.value.wait_s == 17
    assert quota.pauses == [17]
    assert len(seen) == 1


async def test_a_success_that_says_nothing_remains_pauses_before_whoop_refuses() -> None:
    client, quota, _, _ = _client(
        lambda r: _json(200, WORKOUT, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "42"})
    )
    await client.get("/activity/workout/abc", access_token=TOKEN, priority=Priority.LIVE)
    assert quota.pauses == [42]


async def test_no_budget_means_nothing_is_sent() -> None:
    client, _, _, seen = _client(lambda r: _json(200, WORKOUT), quota=RecordingQuota(refuse_for=12.5))
    with pytest.raises(QuotaDeferred) as caught:
        await client.get("/cycle/1", access_token=TOKEN, priority=Priority.BACKFILL)
    assert caught.value.wait_s == 12.5
    assert seen == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, WhoopUnauthorized), (404, WhoopNotFound), (400, WhoopRejected), (403, WhoopRejected)],
)
async def test_client_errors_are_raised_once_without_retry_and_without_the_token(
    status: int, error: type[Exception]
) -> None:
    client, _, _, seen = _client(lambda r: _json(status, b'{"error":"x"}'))
    with pytest.raises(error) as caught:
        await client.get("/cycle/1", access_token=TOKEN, priority=Priority.LIVE)
    assert len(seen) == 1
    assert TOKEN not in str(caught.value)
    assert not getattr(caught.value, "retriable", True)


@pytest.mark.parametrize("body", [b"[]", b"not json", b'"text"'])
async def test_a_2xx_that_is_not_a_json_object_is_a_bad_response(body: bytes) -> None:
    client, _, _, _ = _client(lambda r: _json(200, body))
    with pytest.raises(WhoopBadResponse):
        await client.get("/cycle/1", access_token=TOKEN, priority=Priority.LIVE)


async def test_refresh_rotates_and_dates_the_new_pair_by_the_clock() -> None:
    forms: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        forms.append(parse_qs(request.content.decode()))
        return _json(
            200,
            b'{"access_token":"new-access","expires_in":3600,"refresh_token":"new-refresh",'
            b'"scope":"offline read:sleep","token_type":"bearer"}',
        )

    client, quota, clock, _ = _client(handler)
    pair = await client.refresh(REFRESH)
    assert (pair.access_token, pair.refresh_token) == ("new-access", "new-refresh")
    assert pair.expires_at == clock.now() + timedelta(seconds=3600)
    assert pair.scopes == ("offline", "read:sleep")
    assert forms[0]["grant_type"] == ["refresh_token"]
    assert forms[0]["refresh_token"] == [REFRESH]
    assert forms[0]["scope"] == ["offline"]
    assert forms[0]["client_id"] == ["sim-client-id"]
    assert quota.granted == []  # the token endpoint is not the data API's quota
    assert "new-access" not in repr(pair)


async def test_invalid_grant_means_the_member_must_authorize_again() -> None:
    client, _, _, _ = _client(lambda r: _json(400, b'{"error":"invalid_grant","error_description":"..."}'))
    with pytest.raises(NeedsReauth) as caught:
        await client.refresh(REFRESH)
    assert caught.value.reason == "invalid_grant"
    assert REFRESH not in str(caught.value)


async def test_a_bad_client_is_not_blamed_on_the_member() -> None:
    client, _, _, _ = _client(lambda r: _json(401, b'{"error":"invalid_client"}'))
    with pytest.raises(WhoopRejected):
        await client.refresh(REFRESH)


async def test_a_failing_token_endpoint_is_retried_then_retriable() -> None:
    client, _, _, seen = _client(lambda r: _json(500, b'{"error":"server_error"}'), retries=1)
    with pytest.raises(TokenRefreshUnavailable) as caught:
        await client.refresh(REFRESH)
    assert len(seen) == 2 and caught.value.retriable


@pytest.mark.parametrize(
    ("value", "expected"), [("17", 17.0), ("0", 0.0), ("", 60.0), ("soon", 60.0), ("-3", 60.0)]
)
def test_reset_header_is_seconds(value: str, expected: float) -> None:
    assert parse_reset({"x-ratelimit-reset": value}) == expected
