"""Query parameters, cursors, WearMetrics, ETags and the auth helpers, without I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from projections.errors import BadRequest, Forbidden, NotFound, RateLimited, Unauthenticated
from projections.query.auth import Principal, RateLimiter, authorize, bearer_of
from projections.query.cursor import decode_cursor, encode_cursor, scope_digest
from projections.query.http import Call, body_etag, not_modified, parse_query, request_etag, wants
from projections.query.params import Window, parse_date, parse_id, parse_instant, parse_limit, parse_window
from projections.query.wear_metrics import COLUMNS, iso_instant, wear_metrics
from projections.settings import ProjectionsSettings, parse_admin_tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-10-14T02:41:07.312Z", datetime(2025, 10, 14, 2, 41, 7, 312000, tzinfo=UTC)),
        ("2025-10-14T02:41:07+02:00", datetime(2025, 10, 14, 0, 41, 7, tzinfo=UTC)),
        ("2025-10-14T02:41:07", datetime(2025, 10, 14, 2, 41, 7, tzinfo=UTC)),  # naive: UTC
        ("2025-10-14 02:41", datetime(2025, 10, 14, 2, 41, tzinfo=UTC)),
        ("2025-10-14", datetime(2025, 10, 14, tzinfo=UTC)),
        ("2025-10-14T02:41:07.123456-05:30", datetime(2025, 10, 14, 8, 11, 7, 123456, tzinfo=UTC)),
    ],
)
def test_instants_are_iso_8601_and_naive_means_utc(raw: str, expected: datetime) -> None:
    assert parse_instant(raw, "start") == expected


@pytest.mark.parametrize(
    "raw", ["", "yesterday", "2025-13-01", "2025-10-14T25:00", "x" * 65, "0001-01-01T00:00+05:00"]
)
def test_unusable_instants_are_bad_requests(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_instant(raw, "start")
    assert caught.value.status == 400 and caught.value.code == "invalid_parameter"
    assert not raw or raw not in caught.value.message  # the value is never echoed


def test_windows_need_start_before_end_and_report_their_span() -> None:
    assert parse_window(None, None) == Window(None, None)
    window = parse_window("2025-10-01", "2025-10-31")
    assert window.days() == 30
    assert Window(None, window.end).days() is None
    with pytest.raises(BadRequest, match="before"):
        parse_window("2025-10-02", "2025-10-01T23:59:59")
    with pytest.raises(BadRequest, match="before"):
        parse_window("2025-10-02", "2025-10-02")


@pytest.mark.parametrize(("raw", "limit"), [(None, 25), ("1", 1), ("25", 25), ("07", 7)])
def test_limits_default_to_25(raw: str | None, limit: int) -> None:
    assert parse_limit(raw) == limit


@pytest.mark.parametrize("raw", ["0", "26", "100", "-1", "1.0", " 5", "", "10000", "٣"])
def test_other_limits_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_limit(raw)
    assert caught.value.code == "invalid_limit"


def test_dates_and_ids() -> None:
    assert parse_date("2025-10-14", "start_date") == date(2025, 10, 14)
    for bad in ("2025-10-1", "14/10/2025", "2025-02-30"):
        with pytest.raises(BadRequest):
            parse_date(bad, "start_date")
    uid = "3F1C9A2E-8B4D-4E6F-9A1B-2C7D5E8F0A13"
    assert parse_id("cycles", "1093387651") == ("cycle_id", 1093387651)
    assert parse_id("recovery", "1093387651") == ("cycle_id", 1093387651)
    assert parse_id("recovery", uid) == ("sleep_id", uid.lower())
    assert parse_id("sleep", uid) == ("sleep_id", uid.lower())
    assert parse_id("workouts", uid) == ("workout_id", uid.lower())
    for kind, bad in (
        ("cycles", uid),
        ("cycles", "9223372036854775808"),
        ("cycles", "-1"),
        ("sleep", "1093387651"),
        ("workouts", "x" * 50),
        ("recovery", "nope"),
    ):
        with pytest.raises(BadRequest) as caught:
            parse_id(kind, bad)
        assert caught.value.code == "invalid_id"


def test_cursors_round_trip_and_are_bound_to_their_query() -> None:
    scope = scope_digest("sleep", "u1", None, None)
    assert scope != scope_digest("sleep", "u2", None, None)
    token = encode_cursor(scope, "2025-10-01T00:00:00+00:00", "abc")
    assert "=" not in token and token.isascii()
    assert decode_cursor(token, scope) == ("2025-10-01T00:00:00+00:00", "abc")
    with pytest.raises(BadRequest) as caught:
        decode_cursor(token, scope_digest("cycles", "u1", None, None))
    assert caught.value.code == "cursor_mismatch"
    for garbage in ("", "é", "%%%", "bnVsbA", "WzIsImEiLCJiIiwiYyJd", "WzEsMSwyLDNd", "a" * 513):
        with pytest.raises(BadRequest) as caught:
            decode_cursor(garbage, scope)
        assert caught.value.code == "invalid_cursor", garbage


_ROWS = {
    "cycles": {
        "cycle_id": 7,
        "whoop_user_id": 1,
        "score_state": "SCORED",
        "start_at": datetime(2025, 10, 1, 2, 0, 0, 123456, tzinfo=UTC),
        "end_at": None,
        "timezone_offset": "-04:00",
        "local_date": date(2025, 10, 1),
        "strain": 12.0,
        "energy_kcal": 2000.5,
        "average_heart_rate_bpm": 60,
        "max_heart_rate_bpm": 170,
    },
    "recovery": {
        "cycle_id": 7,
        "sleep_id": "s",
        "whoop_user_id": 1,
        "score_state": "PENDING_SCORE",
        "start_at": datetime(2025, 10, 1, tzinfo=UTC),
        "end_at": datetime(2025, 10, 1, 8, tzinfo=UTC),
        "day": None,
        "user_calibrating": None,
        "recovery_score_pct": None,
        "resting_heart_rate_bpm": None,
        "hrv_rmssd_ms": None,
        "spo2_pct": None,
        "skin_temp_c": None,
    },
    "sleep": {
        "sleep_id": "s",
        "cycle_id": 7,
        "whoop_user_id": 1,
        "score_state": "SCORED",
        "nap": True,
        "start_at": datetime(2025, 10, 1, tzinfo=UTC),
        "end_at": datetime(2025, 10, 1, 1, tzinfo=UTC),
        "timezone_offset": "Z",
        "local_date": date(2025, 10, 1),
        "in_bed_ms": 3_600_000,
        "awake_ms": 0,
        "light_ms": 1,
        "slow_wave_ms": 2,
        "rem_ms": 3,
        "asleep_ms": 6,
        "respiratory_rate_bpm": 15.25,
        "performance_pct": 90.0,
        "consistency_pct": None,
        "efficiency_pct": 99.5,
    },
    "workouts": {
        "workout_id": "w",
        "whoop_user_id": 1,
        "score_state": "SCORED",
        "sport_name": "running",
        "start_at": datetime(2025, 10, 1, tzinfo=UTC),
        "end_at": datetime(2025, 10, 1, 1, tzinfo=UTC),
        "timezone_offset": "+01:00",
        "local_date": date(2025, 10, 1),
        "strain": 11.0,
        "energy_kcal": 550.0,
        "average_heart_rate_bpm": 150,
        "max_heart_rate_bpm": 180,
        "distance_m": 8046.7,
        "altitude_gain_m": 38.2,
        "percent_recorded": 100.0,
    },
}


@pytest.mark.parametrize("kind", sorted(_ROWS))
def test_wear_metrics_have_the_contract_shape(kind: str) -> None:
    row = _ROWS[kind]
    assert set(row) == set(COLUMNS[kind])
    item = wear_metrics(kind, row)
    assert set(item) == {"timestamp", "device_id", "source", "metrics", "meta"}
    assert item["device_id"] == "whoop_1" and item["source"] == "whoop"
    assert str(item["timestamp"]).endswith("Z")
    metrics = item["metrics"]
    assert isinstance(metrics, dict)
    assert all(value is None or isinstance(value, int | float) for value in metrics.values())
    assert not {"stress", "steps", "hrv_sdnn"} & set(metrics)


def test_wear_metrics_values_and_units() -> None:
    cyc = wear_metrics("cycles", _ROWS["cycles"])
    assert cyc["timestamp"] == "2025-10-01T02:00:00.123Z"
    assert cyc["metrics"] == {"hr": 60, "hr_max": 170, "calories": 2000.5, "strain": 12.0}
    assert cyc["meta"] == {
        "vendor": "whoop",
        "type": "cycle",
        "id": "7",
        "score_state": "SCORED",
        "local_date": "2025-10-01",
        "timezone_offset": "-04:00",
        "end": None,
    }
    assert wear_metrics("workouts", _ROWS["workouts"])["metrics"]["distance"] == 8046.7  # type: ignore[index]
    rec = wear_metrics("recovery", _ROWS["recovery"])
    assert rec["metrics"] == dict.fromkeys(
        ("recovery_score", "hrv_rmssd", "resting_hr", "spo2", "skin_temp_c")
    )
    assert rec["meta"]["end"] == "2025-10-01T08:00:00.000Z"  # type: ignore[index]
    with pytest.raises(TypeError):
        wear_metrics("cycles", {**_ROWS["cycles"], "strain": "12"})
    assert wear_metrics("cycles", {**_ROWS["cycles"], "strain": True})["metrics"]["strain"] is None  # type: ignore[index]
    assert (
        iso_instant(datetime(2025, 1, 1, 1, tzinfo=UTC) + timedelta(microseconds=999))
        == "2025-01-01T01:00:00.000Z"
    )


def _request(headers: list[tuple[bytes, bytes]], query: bytes = b"", path: str = "/x") -> Call:
    return Call.from_scope(
        {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": query}
    )


def test_bearer_tokens_are_parsed_strictly() -> None:
    assert bearer_of(_request([(b"authorization", b"Bearer abc")])) == "abc"
    assert bearer_of(_request([(b"authorization", b"bearer  abc ")])) == "abc"
    for headers in (
        [],
        [(b"authorization", b"Bearer")],
        [(b"authorization", b"Basic abc")],
        [(b"authorization", b"Bearer abc"), (b"authorization", b"Bearer abc")],
        [(b"authorization", b"Bearer " + b"a" * 257)],
        [(b"authorization", "Bearer é".encode())],
    ):
        with pytest.raises(Unauthenticated):
            bearer_of(_request(headers))


def test_principals_read_their_own_member_or_hold_the_scope() -> None:
    user = Principal("user", "1", user_id="u1")
    authorize(user, "u1", "read")
    with pytest.raises(NotFound):
        authorize(user, "u2", "read")
    reader = Principal("admin", "ops", scopes=frozenset({"read"}))
    authorize(reader, "anyone", "read")
    authorize(reader, "anyone", "status")
    support = Principal("admin", "support", scopes=frozenset({"status"}))
    authorize(support, "anyone", "status")
    with pytest.raises(Forbidden):
        authorize(support, "anyone", "read")


def test_the_rate_limiter_is_a_token_bucket_per_principal() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    alice, bob = Principal("user", "a", "a"), Principal("user", "b", "b")
    for _ in range(3):
        limiter.check(alice)
    with pytest.raises(RateLimited):
        limiter.check(alice)
    limiter.check(bob)  # buckets are per token
    now[0] = 0.5  # one more request refilled
    limiter.check(alice)
    with pytest.raises(RateLimited):
        limiter.check(alice)
    unlimited = RateLimiter(rate=0, burst=1)
    for _ in range(100):
        unlimited.check(alice)


def test_etags_and_if_none_match() -> None:
    request = _request([(b"if-none-match", b'W/"a", "b"')], b"limit=2&start=x", "/p")
    same = _request([], b"start=x&limit=2", "/p")
    assert request_etag(1, request) == request_etag(1, same)  # the order of parameters does not matter
    assert request_etag(1, request) != request_etag(2, request)
    assert request_etag(1, request) != request_etag(1, _request([], b"start=x&limit=2", "/q"))
    assert wants(request) == ['"a"', '"b"']
    assert not_modified(request, '"a"') is not None and not_modified(request, '"c"') is None
    star = _request([(b"if-none-match", b"*")])
    response = not_modified(star, '"z"')
    assert response is not None and response.status == 304 and response.body == b""
    assert response.header("etag") == '"z"'
    assert not_modified(_request([]), '"z"') is None
    assert body_etag(b"x") != body_etag(b"y")


def test_admin_tokens_are_configured_as_hashes_with_known_scopes() -> None:
    digest = "a" * 64
    (token,) = parse_admin_tokens((f"ops:{digest}:read+status",))
    assert (token.label, token.token_hash, token.scopes) == ("ops", digest, frozenset({"read", "status"}))
    for bad in (
        "ops",
        f"ops:{digest}",
        f":{digest}:read",
        "ops:xyz:read",
        f"ops:{digest}:write",
        f"ops:{digest}:",
    ):
        with pytest.raises(ValueError, match="PROJECTIONS_ADMIN_TOKENS item 0") as caught:
            parse_admin_tokens((bad,))
        assert digest not in str(caught.value)
    settings = ProjectionsSettings(admin_tokens=f"ops:{digest}:read, support:{'b' * 64}:status")
    assert [t.label for t in settings.admin()] == ["ops", "support"]
    assert ProjectionsSettings(activity_topics="").activity_topics == ()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"start=2025-10-14T02:41:07Z&end=2025-10-15&limit=5",
        b"a=1&a=2&b&=x&&c=",
        b"start=2025-10-14T02%3A41%3A07%2B02%3A00&types=sleep,+cycles",
        b"bad=%ZZ&utf=%C3%A9&latin=\xe9",
    ],
)
def test_query_strings_read_as_starlette_reads_them(raw: bytes) -> None:
    from starlette.datastructures import QueryParams

    expected = QueryParams(raw)
    parsed = parse_query(raw)
    assert parsed == {name: expected.getlist(name) for name in expected}
    call = _request([(b"authorization", b"Bearer x"), (b"if-none-match", b'"a"')], raw)
    assert call.authorization == ["Bearer x"] and call.if_none_match == ['"a"']
    assert all(call.params(name) == expected.getlist(name) for name in expected)
    assert call.params("absent") == []
