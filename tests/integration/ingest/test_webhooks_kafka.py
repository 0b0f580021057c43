"""The webhook edge on a real topic: what gets 204 is on the topic, what is refused never reaches it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette

from infra.settings import KafkaSettings, PostgresSettings
from ingest.app import create_app
from ingest.payload import WhoopWebhook, event_id_for
from ingest.publisher import KafkaPublisher
from schemas.events import WebhookReceived
from tests.conftest import TopicFactory
from tests.integration.ingest.conftest import edge_settings, read_topic
from tests.support.ingest_fakes import NoStore, now_ms, raw_request, signed_headers

PATH = "/v1/webhooks/whoop"
LIMIT = 4096


def webhook(n: int, event_type: str = "workout.updated") -> bytes:
    return orjson.dumps(
        {
            "user_id": 482913 + n % 5,
            "id": f"b2d7e0c4-61a9-4f3e-8c25-{n:012d}",
            "type": event_type,
            "trace_id": f"t-{n}",
        }
    )


def event_id(body: bytes) -> str:
    data = orjson.loads(body)
    return event_id_for(WhoopWebhook(data["user_id"], data["id"], data["type"], data["trace_id"]))


@pytest.fixture
async def webhook_app(
    kafka_settings: KafkaSettings, postgres_settings: PostgresSettings, topic_factory: TopicFactory
) -> AsyncIterator[tuple[Starlette, str]]:
    topic = await topic_factory("whoop.webhooks.v1", partitions=3)
    settings = edge_settings(
        postgres_settings, kafka_settings, webhook_topic=topic, max_body_bytes=LIMIT, append_timeout_s=5.0
    )
    publisher = await KafkaPublisher.start(
        kafka_settings, timeout_s=settings.ingest.append_timeout_s, linger_ms=2
    )
    try:
        yield create_app(settings, publisher, NoStore()), topic
    finally:
        await publisher.stop()


async def test_every_refusal_has_its_status_and_only_the_204s_reach_the_topic(
    webhook_app: tuple[Starlette, str], kafka_settings: KafkaSettings
) -> None:
    app, topic = webhook_app
    good = webhook(1)
    fresh = signed_headers(good)
    cases: list[tuple[bytes, Mapping[str, str | bytes], int, str]] = [
        (good.replace(b"482914", b"482915"), fresh, 401, "signature_mismatch"),
        (good, {**fresh, "X-WHOOP-Signature": "A" * 43 + "="}, 401, "signature_mismatch"),
        (good, signed_headers(good, secret="another-secret"), 401, "signature_mismatch"),
        (good, {"Content-Type": "application/json"}, 401, "missing_signature"),
        (good, {k: v for k, v in fresh.items() if "Timestamp" not in k}, 401, "missing_timestamp"),
        (good, signed_headers(good, timestamp_ms=now_ms() - 10 * 60_000), 401, "timestamp_too_old"),
        (good, signed_headers(good, timestamp_ms=now_ms() + 10 * 60_000), 401, "timestamp_in_future"),
        (good, {**fresh, "X-WHOOP-Signature": b"\xff" * 44}, 401, "malformed_signature"),
        (good, {**fresh, "X-WHOOP-Signature-Timestamp": "1e12"}, 401, "malformed_timestamp"),
        (b"x" * (LIMIT + 1), signed_headers(b"x" * (LIMIT + 1)), 413, "body_too_large"),
        (b"{broken", signed_headers(b"{broken"), 400, "malformed_json"),
        (b'{"type":"sleep.updated"}', signed_headers(b'{"type":"sleep.updated"}'), 400, "missing_field"),
    ]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
    ) as client:
        for body, headers, status, code in cases:
            as_bytes = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in headers.items()}
            response = await client.post(PATH, content=body, headers=as_bytes)
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), (
                code,
                response.text,
            )
        duplicated = [(k.lower().encode(), v.encode()) for k, v in fresh.items()]
        for name in (b"x-whoop-signature", b"x-whoop-signature-timestamp"):
            value = dict(duplicated)[name]
            status, _, _ = await raw_request(app, PATH, [*duplicated, (name, value)], [good])
            assert status == 401
        unknown = orjson.dumps({"user_id": 1, "id": "x", "type": "body_measurement.updated", "trace_id": "u"})
        response = await client.post(PATH, content=unknown, headers=signed_headers(unknown))
        assert response.status_code == 200
        # the sentinel: a good webhook (twice: a WHOOP duplicate) is appended
        for _ in range(2):
            response = await client.post(PATH, content=good, headers=signed_headers(good))
            assert response.status_code == 204
    events = await read_topic(kafka_settings, topic)
    assert [type(e) for e in events] == [WebhookReceived, WebhookReceived]
    assert {e.event_id for e in events} == {event_id(good)}  # the duplicate is the same event


async def _serve(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


async def _exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    await writer.wait_closed()
    return data


async def test_over_a_real_socket_lying_and_chunked_bodies_never_reach_the_topic(
    webhook_app: tuple[Starlette, str], kafka_settings: KafkaSettings
) -> None:
    app, topic = webhook_app
    server, task, port = await _serve(app)
    try:
        big = b" " * (LIMIT + 100) + webhook(2)
        headers = signed_headers(big)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"X-WHOOP-Signature: {headers['X-WHOOP-Signature']}\r\n"
            f"X-WHOOP-Signature-Timestamp: {headers['X-WHOOP-Signature-Timestamp']}\r\n"
        ).encode()
        # chunked, no Content-Length, larger than the cap
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(big[i : i + 1000]), big[i : i + 1000]) for i in range(0, len(big), 1000)
        )
        answer = await _exchange(port, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # Content-Length lies low: the server reads only that much, the signature cannot match
        answer = await _exchange(port, head + b"Content-Length: 100\r\n\r\n" + big)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        # a declared oversize body is refused without being read
        answer = await _exchange(port, head + f"Content-Length: {len(big)}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # and a good one over the same server is appended
        good = webhook(3)
        ok = signed_headers(good)
        answer = await _exchange(
            port,
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(good)}\r\n"
            f"X-WHOOP-Signature: {ok['X-WHOOP-Signature']}\r\n"
            f"X-WHOOP-Signature-Timestamp: {ok['X-WHOOP-Signature-Timestamp']}\r\n\r\n".encode()
            + good,
        )
        assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    events = await read_topic(kafka_settings, topic)
    assert [e.event_id for e in events] == [event_id(webhook(3))]
