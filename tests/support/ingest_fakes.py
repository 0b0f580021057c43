"""Fakes of the ingest edge's ports, and request helpers shared by the tests and the ingest benchmark."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

from infra.settings import DEV_WHOOP_CLIENT_SECRET, KafkaSettings, PostgresSettings, WhoopAppSettings
from infra.vault import ApiPrincipal, IssuedToken, TokenPair, VaultSettings
from ingest.errors import AppendUnavailable
from ingest.pull_jobs import PullLimits
from ingest.settings import IngestSettings, Settings
from ingest.signature import sign
from ingest.store import Connection, OAuthState, PullJob, Refresher

SECRET = DEV_WHOOP_CLIENT_SECRET
VECTOR_BODY = (
    b'{"user_id":482913,"id":"3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13","type":"sleep.updated",'
    b'"trace_id":"b7e2c4a1-5d3f-4a8e-9c6b-1f2e3d4c5b6a"}'
)
VECTOR_TIMESTAMP = "1760437512345"
VECTOR_SIGNATURE = "C4mngIuOQxxPdQz+jf3Vi5eQQGnLRVp8AgPh61gkw1k="


def make_settings(**ingest: Any) -> Settings:
    """Settings for tests: the dev WHOOP app and explicit ingest knobs."""
    return Settings(
        ingest=IngestSettings(**ingest),
        kafka=KafkaSettings(),
        postgres=PostgresSettings(),
        whoop=WhoopAppSettings(),
        vault=VaultSettings(),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def signed_headers(body: bytes, *, secret: str = SECRET, timestamp_ms: int | None = None) -> dict[str, str]:
    """Headers WHOOP would send for ``body`` signed now (or at ``timestamp_ms``)."""
    timestamp = str(now_ms() if timestamp_ms is None else timestamp_ms)
    return {
        "Content-Type": "application/json",
        "X-WHOOP-Signature": sign(secret.encode(), timestamp.encode(), body),
        "X-WHOOP-Signature-Timestamp": timestamp,
    }


class FakePublisher:
    """Records appends; ``fail`` makes every append unavailable."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None]] = []
        self.fail = False
        self.is_ready = True

    async def append(self, topic: str, key: bytes, value: bytes | None) -> None:
        if self.fail:
            raise AppendUnavailable("kafka_timeout", "fake outage")
        self.records.append((topic, key, value))

    async def ready(self) -> bool:
        return self.is_ready


class NoStore:
    """A store for tests that must not touch one (webhooks): every call but ready() fails."""

    def __init__(self, ready: bool = True) -> None:
        self.is_ready = ready

    async def ready(self) -> bool:
        return self.is_ready

    def _never(self) -> Any:
        raise AssertionError("the webhook path must not use the store")

    async def create_state(self, state: str, bound: OAuthState, ttl_s: int) -> None:
        self._never()

    async def consume_state(self, state: str) -> OAuthState:
        return self._never()  # type: ignore[no-any-return]

    async def save_connection(self, whoop_user_id: int, pair: TokenPair, backfill: PullJob) -> Connection:
        return self._never()  # type: ignore[no-any-return]

    async def connection(self, user_id: str) -> Connection | None:
        return self._never()  # type: ignore[no-any-return]

    async def issue_api_token(self, user_id: str, *, device_id: str, ttl: timedelta) -> IssuedToken:
        return self._never()  # type: ignore[no-any-return]

    async def authenticate(self, token: str) -> ApiPrincipal | None:
        return None

    async def refresh_api_token(self, token_id: str, *, ttl: timedelta) -> IssuedToken | None:
        return self._never()  # type: ignore[no-any-return]

    async def create_exchange_code(
        self, code: str, user_id: str, ttl_s: int, app_code_challenge: str | None = None
    ) -> None:
        self._never()

    async def redeem_exchange_code(
        self, code: str, code_verifier: str | None, *, device_id: str, ttl: timedelta
    ) -> IssuedToken:
        return self._never()  # type: ignore[no-any-return]

    async def revoke_member_credentials(self, user_id: str) -> int:
        return self._never()  # type: ignore[no-any-return]

    async def load_tokens(self, user_id: str) -> TokenPair | None:
        return self._never()  # type: ignore[no-any-return]

    async def refresh_tokens(self, user_id: str, stale: TokenPair, refresher: Refresher) -> TokenPair:
        return self._never()  # type: ignore[no-any-return]

    async def disconnect(self, user_id: str) -> int:
        return self._never()  # type: ignore[no-any-return]

    async def create_pull_job(self, job: PullJob, limits: PullLimits) -> None:
        self._never()

    async def fail_pull_job(self, job_id: str, error: str) -> None:
        self._never()

    async def pull_job(self, user_id: str, job_id: str) -> PullJob | None:
        return self._never()  # type: ignore[no-any-return]


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    """An in-process client (no lifespan: tests inject every port)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest.test")


async def raw_request(
    app: ASGIApp,
    path: str,
    headers: Sequence[tuple[bytes, bytes]],
    chunks: Iterable[bytes],
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    """Drive the ASGI app directly, with headers exactly as given (duplicates, lies, odd bytes)."""
    pending = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    pending.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[Message] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("ingest.test", 80),
    }

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body
