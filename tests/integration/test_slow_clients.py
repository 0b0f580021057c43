"""Slow and abusive clients against real uvicorn servers on 127.0.0.1, configured by the project's builder.

The servers are the real ones: the ingest app served with ``ingest.__main__.server_config`` (its ports
are the unit fakes: no Kafka or PostgreSQL is needed to read a request), the query API of
``projections.__main__.api_server`` on real PostgreSQL, the simulator of ``tests.support.server``. Every
deadline is 1 s here. Each test says what it would see without the feature; every loop is bounded in
count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Literal

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette

from infra import http_server
from infra.http_limits import HttpLimits
from infra.settings import KafkaSettings, PostgresSettings, WhoopAppSettings
from ingest.__main__ import server_config as ingest_server_config
from ingest.app import create_app
from projections.__main__ import api_server
from projections.settings import ProjectionsSettings
from projections.settings import Settings as ProjectionsAppSettings
from simulator.app import create_app as create_simulator
from simulator.settings import SimulatorSettings
from tests.integration.projections.conftest import with_search_path
from tests.support.ingest_fakes import FakePublisher, NoStore, make_settings, signed_headers
from tests.support.server import serve_in_thread

DEADLINE_S = 1.0
SLACK_S = 1.5  # scheduling on a busy shared machine; still far below what a trickler would last
WEBHOOK = "/v1/webhooks/whoop"
BODY = orjson.dumps(
    {
        "user_id": 482913,
        "id": "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13",
        "type": "sleep.updated",
        "trace_id": "t",
    }
)
Http = Literal["httptools", "h11"]


def _ingest_config(
    http: Http, publisher: FakePublisher, app_out: list[Starlette] | None = None, **ingest: object
) -> uvicorn.Config:
    """The ingest edge as ``python -m ingest`` serves it (httptools), or the builder's h11 variant;
    the app is appended to ``app_out`` when given."""
    limits: dict[str, object] = {"header_timeout_s": DEADLINE_S, "body_timeout_s": DEADLINE_S}
    settings = make_settings(host="127.0.0.1", port=0, keep_alive_s=1, **{**limits, **ingest})
    app = create_app(settings, publisher, NoStore())
    if app_out is not None:
        app_out.append(app)
    if http == "httptools":
        return ingest_server_config(settings, app)
    own = settings.ingest
    return http_server.server_config(
        app, host=own.host, port=0, limits=own.http_limits(), http="h11", lifespan="on"
    )


@contextlib.asynccontextmanager
async def serving(server: uvicorn.Server) -> AsyncIterator[int]:
    """Run ``server`` on this event loop until the block ends; yields its port."""
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        await asyncio.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def trickle(
    port: int, first: bytes, pieces: Iterable[bytes], every_s: float
) -> tuple[float | None, bytes]:
    """Send ``first``, then one piece every ``every_s`` until the server answers or closes.

    Returns the seconds from connecting until the server closed (None: the pieces ran out first) and
    what it sent.
    """
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(first)
        for piece in pieces:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), every_s)
            except TimeoutError:
                writer.write(piece)
                continue
            except ConnectionError:
                return time.monotonic() - started, received
            received += chunk
            if not chunk:
                return time.monotonic() - started, received
        return None, received
    finally:
        writer.close()


def timed_out(received: bytes) -> bool:
    """``received`` is our 408 in the error shape, with the connection closed."""
    head, _, body = received.partition(b"\r\n\r\n")
    error = orjson.loads(body)["error"]
    return (
        head.startswith(b"HTTP/1.1 408 ")
        and b"connection: close" in head
        and error["code"] == "request_timeout"
        and len(error["trace_id"]) == 32
    )


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_trickled_headers_are_cut_at_the_header_deadline_while_a_normal_client_is_served(
    http: Http,
) -> None:
    """Without the header deadline the trickler (a header line a second) would stay for all 10 s."""
    async with serving(uvicorn.Server(_ingest_config(http, FakePublisher()))) as port:
        trickler = asyncio.create_task(
            trickle(
                port,
                b"POST /v1/webhooks/whoop HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                (b"X-Slow-%d: y\r\n" % n for n in range(10)),
                every_s=1.0,
            )
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert not trickler.done(), "the normal client was served only after the trickler left"
        elapsed, received = await asyncio.wait_for(trickler, 20)
    assert elapsed is not None, "the trickler kept its connection for 10 s"
    assert DEADLINE_S - 0.05 <= elapsed < DEADLINE_S + SLACK_S, elapsed
    assert timed_out(received), received


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_trickled_webhook_body_is_cut_at_the_body_deadline_while_a_normal_client_is_served(
    http: Http,
) -> None:
    """Without the body deadline a body of a byte every 0.2 s would hold the request for 10 s."""
    publisher = FakePublisher()
    padded = BODY + b" " * 60
    headers = signed_headers(padded)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    first = (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(padded)}\r\n{head}\r\n"
    ).encode()
    apps: list[Starlette] = []
    async with serving(uvicorn.Server(_ingest_config(http, publisher, apps))) as port:
        trickler = asyncio.create_task(
            trickle(port, first, (padded[n : n + 1] for n in range(50)), every_s=0.2)
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            normal = await client.post(WEBHOOK, content=BODY, headers=signed_headers(BODY))
        assert normal.status_code == 204
        assert not trickler.done(), "the normal client was served only after the trickler left"
        elapsed, received = await asyncio.wait_for(trickler, 20)
    assert elapsed is not None, "the trickled body was read for 10 s"
    assert DEADLINE_S - 0.05 <= elapsed < DEADLINE_S + SLACK_S, elapsed
    assert timed_out(received), received
    assert len(publisher.records) == 1, "only the normal client's webhook is appended"
    rejected = apps[0].state.services.metrics.registry.get_sample_value(
        "ingest_webhooks_rejected_total", {"reason": "signature_mismatch"}
    )
    assert not rejected, "a cut body is not a bad signature"


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_body_still_trickling_after_an_early_answer_is_cut_at_the_body_deadline(http: Http) -> None:
    """The webhook route answers 413 from Content-Length alone; without the body deadline each trickled
    byte cancels uvicorn's keep-alive timer and the connection lasts as long as the trickle (10 s)."""
    first = f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n".encode()
    async with serving(uvicorn.Server(_ingest_config(http, FakePublisher()))) as port:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(first)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert answer.startswith(b"HTTP/1.1 413 ")
            ended = None
            for _ in range(50):  # at most 50 x 0.2 s
                try:
                    ended = await asyncio.wait_for(reader.read(65536), 0.2)
                except TimeoutError:
                    writer.write(b"x")
                    continue
                if not ended:
                    break
            assert ended == b"", "still open after 10 s of trickling"
            assert time.monotonic() - started < DEADLINE_S + SLACK_S
        finally:
            writer.close()


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_hundreds_of_idle_connections_are_closed_at_the_deadline_and_a_normal_client_is_served(
    http: Http,
) -> None:
    """Without the header deadline a connection that never sends a byte stays open for ever."""
    config = _ingest_config(http, FakePublisher())
    server = uvicorn.Server(config)
    async with serving(server) as port:
        idle = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(300)))
        last_opened = time.monotonic()
        try:
            deadline = time.monotonic() + 10
            while len(server.server_state.connections) < 300:
                assert time.monotonic() < deadline, "the server did not accept the idle connections"
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                assert (await client.get("/healthz")).status_code == 200
                assert len(server.server_state.connections) > 300, "served while the idle ones are open"

            async def closed(reader: asyncio.StreamReader) -> bytes:
                return await reader.read(1)

            remaining = last_opened + DEADLINE_S + SLACK_S - time.monotonic()
            ends = await asyncio.wait_for(asyncio.gather(*(closed(r) for r, _ in idle)), remaining)
            assert ends == [b""] * 300, "an idle connection was answered instead of closed"
        finally:
            for _, writer in idle:
                writer.close()
        deadline = time.monotonic() + 5
        while server.server_state.connections:
            assert time.monotonic() < deadline, "the server still holds connections"
            await asyncio.sleep(0.01)


async def test_an_idle_or_blank_line_trickling_kept_alive_connection_is_closed() -> None:
    """Without the keep-alive setting (uvicorn's 5 s) the idle one lasts too long; without the
    header deadline the blank-line trickler (each byte cancels uvicorn's keep-alive) never leaves."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    async with serving(uvicorn.Server(_ingest_config("httptools", FakePublisher()))) as port:
        for blank_lines in (False, True):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                answer = b""
                while not answer.endswith(b'{"status":"ok"}'):
                    chunk = await asyncio.wait_for(reader.read(4096), 5)
                    assert chunk, answer
                    answer += chunk
                served = time.monotonic()
                ended = None
                for _ in range(30):  # at most 30 x 0.3 s
                    try:
                        ended = await asyncio.wait_for(reader.read(1), 0.3)
                        break
                    except TimeoutError:
                        if blank_lines:
                            writer.write(b"\r\n")
                assert ended is not None, f"still open after 9 s (blank lines: {blank_lines})"
                assert time.monotonic() - served < DEADLINE_S + SLACK_S
                if blank_lines:  # bytes were sent: a 408 first
                    assert timed_out(ended + await asyncio.wait_for(reader.read(), 5)), ended
                else:
                    assert ended == b"", "an idle kept-alive connection is closed silently"
            finally:
                writer.close()


async def test_beyond_the_connection_limit_a_request_is_answered_503_at_once() -> None:
    """Without ``limit_concurrency`` the request would be served (200) however many are open."""
    server = uvicorn.Server(_ingest_config("httptools", FakePublisher(), None, max_connections=5))
    async with serving(server) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        try:
            deadline = time.monotonic() + 10
            while len(server.server_state.connections) < 5:
                assert time.monotonic() < deadline, "the server did not accept the idle connections"
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
                started = time.monotonic()
                refused = await client.get("/healthz")
                assert refused.status_code == 503 and time.monotonic() - started < 1.0
                deadline = time.monotonic() + DEADLINE_S + SLACK_S
                while len(server.server_state.connections) > 1:  # the idle ones reach their deadline
                    assert time.monotonic() < deadline, "the idle connections were not closed"
                    await asyncio.sleep(0.01)
                assert (await client.get("/healthz")).status_code == 200
        finally:
            for _, writer in idle:
                writer.close()


async def test_the_query_api_server_cuts_trickled_headers_and_serves_readyz(
    database_url: str, pg_schema: str
) -> None:
    """``python -m projections api``'s server: without the deadline the trickler stays 10 s."""
    own = ProjectionsSettings(api_host="127.0.0.1", api_port=0, header_timeout_s=DEADLINE_S)
    settings = ProjectionsAppSettings(
        own, KafkaSettings(), PostgresSettings(database_url=with_search_path(database_url, pg_schema))
    )
    async with serving(api_server(settings)) as port:
        trickler = asyncio.create_task(
            trickle(
                port,
                b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                (b"X-Slow-%d: y\r\n" % n for n in range(10)),
                every_s=1.0,
            )
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok"}
        elapsed, received = await asyncio.wait_for(trickler, 20)
    assert elapsed is not None and elapsed < DEADLINE_S + SLACK_S, elapsed
    assert timed_out(received), received


def test_the_simulator_server_cuts_trickled_headers() -> None:
    """The simulator's server (``serve_in_thread``, as ``python -m simulator``): without the deadline
    the trickler stays 10 s."""
    app = create_simulator(SimulatorSettings(members=1, days=1, webhooks_enabled=False), WhoopAppSettings())
    with serve_in_thread(app, limits=HttpLimits(header_timeout_s=DEADLINE_S)) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        elapsed, received = asyncio.run(
            trickle(
                port,
                b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                (b"X-Slow-%d: y\r\n" % n for n in range(10)),
                every_s=1.0,
            )
        )
        assert httpx.get(f"{base_url}/_sim/health", timeout=5).status_code == 200
    assert elapsed is not None and elapsed < DEADLINE_S + SLACK_S, elapsed
    assert timed_out(received), received
