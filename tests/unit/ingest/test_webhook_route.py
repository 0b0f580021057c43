"""``POST /v1/webhooks/whoop`` in-process: each refusal's exact status and reason, nothing appended."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from ingest.app import create_app
from ingest.settings import Settings
from schemas.events import WebhookReceived
from schemas.serde import decode
from tests.support.ingest_fakes import (
    SECRET,
    FakePublisher,
    NoStore,
    client_for,
    make_settings,
    now_ms,
    raw_request,
    signed_headers,
)

PATH = "/v1/webhooks/whoop"
BODY = orjson.dumps(
    {
        "user_id": 482913,
        "id": "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13",
        "type": "sleep.updated",
        "trace_id": "t-1",
    }
)
LIMIT = 4096


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def settings() -> Settings:
    return make_settings(max_body_bytes=LIMIT, timestamp_tolerance_s=300, retry_after_s=7)


@pytest.fixture
def app(settings: Settings, publisher: FakePublisher):
    return create_app(settings, publisher, NoStore(), whoop_oauth=None)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


def rejected(app, reason: str) -> float:
    value = app.state.services.metrics.registry.get_sample_value(
        "ingest_webhooks_rejected_total", {"reason": reason}
    )
    return value or 0.0


async def test_a_valid_webhook_is_appended_then_answered_204(client, publisher: FakePublisher) -> None:
    response = await client.post(PATH, content=BODY, headers=signed_headers(BODY))
    assert response.status_code == 204 and response.content == b""
    [(topic, key, value)] = publisher.records
    assert topic == "whoop.webhooks.v1" and value is not None
    event = decode(value)
    assert isinstance(event, WebhookReceived) and event.whoop_event_type == "sleep.updated"
    assert key.decode().endswith(":webhook:3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13")


async def test_the_previous_secret_is_accepted_and_counted(publisher: FakePublisher) -> None:
    settings = make_settings(whoop_client_secret_previous="old-secret")
    app = create_app(settings, publisher, NoStore())
    async with client_for(app) as client:
        response = await client.post(PATH, content=BODY, headers=signed_headers(BODY, secret="old-secret"))
        assert response.status_code == 204
        assert (
            await client.post(PATH, content=BODY, headers=signed_headers(BODY, secret="x"))
        ).status_code == 401
    assert app.state.services.metrics.registry.get_sample_value("ingest_webhooks_previous_secret_total") == 1
    assert len(publisher.records) == 1


def _tampered_cases() -> list[tuple[str, bytes, dict[str, str], str]]:
    good = signed_headers(BODY)
    return [
        ("body", BODY.replace(b"482913", b"482914"), good, "signature_mismatch"),
        ("signature", BODY, {**good, "X-WHOOP-Signature": "A" * 43 + "="}, "signature_mismatch"),
        (
            "timestamp",
            BODY,
            {**good, "X-WHOOP-Signature-Timestamp": str(int(good["X-WHOOP-Signature-Timestamp"]) + 1)},
            "signature_mismatch",
        ),
        ("secret", BODY, signed_headers(BODY, secret=SECRET + "x"), "signature_mismatch"),
        (
            "no signature",
            BODY,
            {k: v for k, v in good.items() if k != "X-WHOOP-Signature"},
            "missing_signature",
        ),
        (
            "no timestamp",
            BODY,
            {k: v for k, v in good.items() if k != "X-WHOOP-Signature-Timestamp"},
            "missing_timestamp",
        ),
        ("stale", BODY, signed_headers(BODY, timestamp_ms=now_ms() - 301_000), "timestamp_too_old"),
        ("future", BODY, signed_headers(BODY, timestamp_ms=now_ms() + 301_000), "timestamp_in_future"),
        ("hex", BODY, {**good, "X-WHOOP-Signature": "0b89a780" * 8}, "malformed_signature"),
        ("seconds", BODY, {**good, "X-WHOOP-Signature-Timestamp": "1760437512.3"}, "malformed_timestamp"),
        ("huge header", BODY, {**good, "X-WHOOP-Signature": "A" * 8000}, "malformed_signature"),
    ]


_CASE_NAMES = [case[0] for case in _tampered_cases()]


@pytest.mark.parametrize("name", _CASE_NAMES)
async def test_refusals_are_401_with_the_reason_and_nothing_is_appended(
    app, client, publisher: FakePublisher, name: str
) -> None:
    # built now, not at collection: a signature made minutes earlier would have gone stale
    [(_, body, headers, reason)] = [case for case in _tampered_cases() if case[0] == name]
    response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == reason
    assert set(response.json()["error"]) == {"code", "message", "trace_id"}
    assert publisher.records == []
    assert rejected(app, reason) == 1


def _raw_headers(body: bytes, **override: bytes) -> list[tuple[bytes, bytes]]:
    signed = {k.lower().encode(): v.encode() for k, v in signed_headers(body).items()}
    signed[b"content-length"] = str(len(body)).encode()
    signed.update({k.replace("_", "-").encode(): v for k, v in override.items()})
    return list(signed.items())


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ((b"x-whoop-signature", b"A" * 43 + b"="), "duplicate_signature"),
        ((b"x-whoop-signature-timestamp", b"1"), "duplicate_timestamp"),
    ],
)
async def test_duplicated_headers_are_refused(app, publisher: FakePublisher, extra, reason: str) -> None:
    status, _, body = await raw_request(app, PATH, [*_raw_headers(BODY), extra], [BODY])
    assert status == 401 and orjson.loads(body)["error"]["code"] == reason
    assert publisher.records == []


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xfe\xfd" * 15,
        b"\x00" * 44,
        "é".encode() * 22,
        b"C4mngIuOQxxPdQz+jf3Vi5eQQGnLRVp8AgPh61gkw1k=\r\nX: y",
    ],
)
async def test_hostile_signature_bytes_are_401_not_500(app, publisher: FakePublisher, value: bytes) -> None:
    status, _, body = await raw_request(app, PATH, _raw_headers(BODY, x_whoop_signature=value), [BODY])
    assert status == 401 and orjson.loads(body)["error"]["code"] == "malformed_signature"
    assert publisher.records == []


@pytest.mark.parametrize("value", [b"\xff" * 13, b"\xd9\xa1" * 13, b"17604375123450000", b""])
async def test_hostile_timestamp_bytes_are_401_not_500(app, publisher: FakePublisher, value: bytes) -> None:
    status, _, body = await raw_request(
        app, PATH, _raw_headers(BODY, x_whoop_signature_timestamp=value), [BODY]
    )
    assert status == 401 and orjson.loads(body)["error"]["code"] == "malformed_timestamp"
    assert publisher.records == []


async def test_a_declared_oversize_body_is_413_before_reading(app, client, publisher: FakePublisher) -> None:
    big = b"x" * (LIMIT + 1)
    response = await client.post(PATH, content=big, headers=signed_headers(big))
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert publisher.records == [] and rejected(app, "body_too_large") == 1


async def test_a_lying_content_length_cannot_smuggle_a_big_body(app, publisher: FakePublisher) -> None:
    big = b" " * (LIMIT + 10) + BODY  # valid JSON, correctly signed, but larger than the cap
    headers = _raw_headers(big, content_length=b"135")
    status, _, body = await raw_request(
        app, PATH, headers, [big[i : i + 1000] for i in range(0, len(big), 1000)]
    )
    assert status == 413 and orjson.loads(body)["error"]["code"] == "body_too_large"
    assert publisher.records == []


async def test_a_chunked_body_without_content_length_is_capped(app, client, publisher: FakePublisher) -> None:
    big = b" " * (LIMIT + 10) + BODY

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 512):
            yield big[i : i + 512]

    response = await client.post(PATH, content=chunks(), headers=signed_headers(big))
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert publisher.records == []


async def test_a_chunked_body_within_the_cap_is_accepted(client, publisher: FakePublisher) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(BODY), 10):
            yield BODY[i : i + 10]

    response = await client.post(PATH, content=chunks(), headers=signed_headers(BODY))
    assert response.status_code == 204 and len(publisher.records) == 1


@pytest.mark.parametrize("content_length", [b"12, 12", b"-1", b"abc"])
async def test_bad_framing_is_400(app, publisher: FakePublisher, content_length: bytes) -> None:
    status, _, body = await raw_request(app, PATH, _raw_headers(BODY, content_length=content_length), [BODY])
    assert status == 400 and orjson.loads(body)["error"]["code"] == "bad_framing"
    assert publisher.records == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "invalid_payload"),
        (orjson.dumps({"user_id": 1, "type": "sleep.updated", "trace_id": "t"}), "missing_field"),
        (
            orjson.dumps({"user_id": "1", "id": "x", "type": "sleep.updated", "trace_id": "t"}),
            "invalid_field",
        ),
    ],
)
async def test_verified_but_malformed_bodies_are_400(
    app, client, publisher: FakePublisher, body: bytes, code: str
) -> None:
    response = await client.post(PATH, content=body, headers=signed_headers(body))
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert publisher.records == [] and rejected(app, code) == 1


async def test_an_unknown_event_type_is_2xx_counted_and_not_appended(
    app, client, publisher: FakePublisher
) -> None:
    body = orjson.dumps({"user_id": 1, "id": 5, "type": "cycle.updated", "trace_id": "t"})
    response = await client.post(PATH, content=body, headers=signed_headers(body))
    assert response.status_code == 200 and response.json()["reason"] == "unknown_event_type"
    assert publisher.records == []
    assert app.state.services.metrics.registry.get_sample_value("ingest_webhooks_unknown_type_total") == 1


async def test_kafka_unavailable_is_503_with_retry_after_never_204(
    app, client, publisher: FakePublisher
) -> None:
    publisher.fail = True
    response = await client.post(PATH, content=BODY, headers=signed_headers(BODY))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "kafka_unavailable"
    registry = app.state.services.metrics.registry
    assert registry.get_sample_value("ingest_kafka_append_failures_total", {"reason": "kafka_timeout"}) == 1


async def test_metrics_expose_rejections_unknown_types_and_append_latency(client) -> None:
    await client.post(PATH, content=BODY, headers=signed_headers(BODY))
    await client.post(PATH, content=BODY, headers={})
    text = (await client.get("/metrics")).text
    assert 'ingest_webhooks_rejected_total{reason="missing_signature"} 1.0' in text
    assert "ingest_kafka_append_seconds_count 1.0" in text
    assert 'ingest_webhooks_accepted_total{type="sleep.updated"} 1.0' in text
    assert SECRET not in text


async def test_healthz_and_readyz(publisher: FakePublisher) -> None:
    store = NoStore()
    app = create_app(make_settings(readyz_cache_s=0), publisher, store)  # every call checks again
    async with client_for(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        publisher.is_ready = False
        response = await client.get("/readyz")
        assert response.status_code == 503 and response.json()["checks"] == {
            "kafka": "unavailable",
            "postgres": "ok",
        }
        publisher.is_ready, store.is_ready = True, False
        response = await client.get("/readyz")
        assert response.status_code == 503 and response.json()["checks"]["postgres"] == "unavailable"


async def test_other_methods_on_the_webhook_path_are_405(client) -> None:
    assert (await client.get(PATH)).status_code == 405


@pytest.mark.parametrize("chunks_before_leaving", [0, 1])
async def test_a_client_gone_before_its_body_is_in_is_neither_answered_nor_counted(
    app, publisher: FakePublisher, chunks_before_leaving: int
) -> None:
    """What the route sees when the server cuts a body at its deadline: ``http.disconnect``."""
    messages = [{"type": "http.request", "body": BODY[:10], "more_body": True}][:chunks_before_leaving]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "headers": _raw_headers(BODY),
        "query_string": b"",
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    assert sent == [] and publisher.records == []
    assert rejected(app, "signature_mismatch") == 0
