"""``WhoopClient``: the fetcher's adapter for WHOOP's data API and token endpoint.

One ``httpx.AsyncClient`` per process (connection pool, explicit ``User-Agent``, a connect and a
read/write/pool timeout on every call). Every request attempt, retries included, first takes one
request from the shared quota (``processors.quota``) at the caller's priority; no budget raises
:class:`QuotaDeferred` before anything is sent. Then:

* 2xx → the JSON object; a body that is not one raises :class:`WhoopBadResponse`;
* 5xx, timeouts and network errors → bounded retries with full jitter, then :class:`WhoopUnavailable`;
* 429 → the whole bucket pauses until ``X-RateLimit-Reset`` (seconds) has passed, :class:`QuotaDeferred`;
  a 2xx saying ``X-RateLimit-Remaining: 0`` pauses the bucket the same way, before WHOOP refuses;
* 401 → :class:`WhoopUnauthorized` (the caller refreshes once and retries), 404 → :class:`WhoopNotFound`,
  other 4xx → :class:`WhoopRejected`.

``refresh`` exchanges a refresh token through the shared token client (``infra.whoop_tokens``;
``whoop-api-v2.md`` §2.6, ``scope=offline``, rotation), retrying network errors, 429 and 5xx:
``invalid_grant`` raises :class:`NeedsReauth`, a 5xx or a timeout :class:`TokenRefreshUnavailable`.
Tokens travel only in headers and form bodies; no message or log line ever contains one.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import orjson
from pydantic import JsonValue

from infra.settings import WhoopAppSettings
from infra.vault import TokenPair
from infra.whoop_tokens import TokenEndpoint, TokenEndpointUnavailable, TokenRefused, TokenResponseInvalid
from processors.clock import Clock
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
from processors.metrics import count_refresh, count_whoop_call
from processors.quota import Priority, Quota
from processors.settings import FetcherSettings

__all__ = ["API_PREFIX", "WhoopClient", "parse_reset"]

logger = logging.getLogger(__name__)

API_PREFIX = "/developer/v2"
Json = dict[str, JsonValue]


def parse_reset(headers: Mapping[str, str], default_s: float = 60.0) -> float:
    """Seconds until the closest WHOOP window resets (``X-RateLimit-Reset``, §9); ``default_s`` if absent."""
    raw = headers.get("x-ratelimit-reset", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return default_s
    return value if value >= 0 else default_s


def _remaining(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("x-ratelimit-remaining", "").strip()
    return int(raw) if raw.isdigit() else None


@dataclass(eq=False)
class WhoopClient:
    """WHOOP's data API and token endpoint over one HTTP client, inside the shared quota."""

    http: httpx.AsyncClient
    app: WhoopAppSettings
    settings: FetcherSettings
    quota: Quota
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)  # retry jitter, not a secret
    calls: Counter[Priority] = field(default_factory=Counter, init=False)
    statuses: Counter[int] = field(default_factory=Counter, init=False)
    _tokens: TokenEndpoint = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = TokenEndpoint(self.http, self.app)

    @classmethod
    def create(
        cls,
        app: WhoopAppSettings,
        settings: FetcherSettings,
        quota: Quota,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> WhoopClient:
        """A client with its own ``httpx.AsyncClient`` (close it with :meth:`aclose`)."""
        http = httpx.AsyncClient(
            base_url=app.whoop_api_base_url,
            timeout=httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
            headers={"User-Agent": settings.user_agent, "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )
        return cls(http, app, settings, quota, clock)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _backoff(self, attempt: int) -> float:
        cap = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** (attempt - 1))
        return self.rng.uniform(0, cap)

    async def get(
        self,
        path: str,
        *,
        access_token: str,
        priority: Priority,
        params: Mapping[str, str | int] | None = None,
    ) -> Json:
        """``GET {API_PREFIX}{path}`` as the member whose token this is; the JSON object WHOOP sent."""
        attempt = 0
        while True:
            verdict = await self.quota.try_acquire(priority)
            if not verdict.granted:
                raise QuotaDeferred(f"no WHOOP budget for {priority.name} now", verdict.wait_s, verdict.until)
            self.calls[priority] += 1
            try:
                response = await self.http.get(
                    API_PREFIX + path,
                    params=dict(params) if params else None,
                    headers={"Authorization": f"Bearer {access_token}"},
                )
            except httpx.HTTPError as exc:  # timeouts, connection errors, protocol errors
                failure = f"GET {path}: {type(exc).__name__}"
                self.statuses[0] += 1
                count_whoop_call(priority, 0)
            else:
                status = response.status_code
                self.statuses[status] += 1
                count_whoop_call(priority, status)
                if 200 <= status < 300:
                    await self._watch_remaining(response.headers)
                    return _json_object(response, path)
                if status == 429:
                    wait = min(parse_reset(response.headers), self.settings.rate_limit_pause_max_s)
                    await self.quota.pause(wait)
                    logger.warning("WHOOP answered 429 on %s: every fetcher pauses %.1f s", path, wait)
                    raise QuotaDeferred(f"WHOOP answered 429 on {path}", wait)
                if status == 401:
                    raise WhoopUnauthorized(f"GET {path}: 401", status)
                if status == 404:
                    raise WhoopNotFound(f"GET {path}: 404", status)
                if status < 500:
                    raise WhoopRejected(f"GET {path}: {status}", status)
                failure = f"GET {path}: {status}"
            attempt += 1
            if attempt > self.settings.retries:
                raise WhoopUnavailable(f"{failure} after {attempt} attempts")
            delay = self._backoff(attempt)
            logger.info("%s; retry %d in %.2f s", failure, attempt, delay)
            await self.clock.sleep(delay)

    async def _watch_remaining(self, headers: Mapping[str, str]) -> None:
        if _remaining(headers) == 0:
            wait = min(parse_reset(headers), self.settings.rate_limit_pause_max_s)
            logger.info("WHOOP says the budget is spent: every fetcher pauses %.1f s", wait)
            await self.quota.pause(wait)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange ``refresh_token`` for a new pair (WHOOP rotates both tokens), with bounded retries."""
        try:
            pair = await self._refresh(refresh_token)
        except Exception as exc:
            count_refresh(exc)
            raise
        count_refresh(None)
        return pair

    async def _refresh(self, refresh_token: str) -> TokenPair:
        attempt = 0
        while True:
            try:
                grant = await self._tokens.refresh(refresh_token)
            except TokenEndpointUnavailable as exc:
                failure = str(exc)
            except TokenRefused as exc:
                if exc.code == "invalid_grant":
                    raise NeedsReauth("WHOOP refused the refresh token (invalid_grant)", exc.code) from exc
                raise WhoopRejected(f"token endpoint refused: {exc.code}", exc.status or 400) from exc
            except TokenResponseInvalid as exc:
                raise WhoopBadResponse(str(exc), 200) from exc
            else:
                if grant.refresh_token is None:
                    raise WhoopBadResponse("token response lacks a refresh_token", 200)
                return grant.pair(self.clock.now())
            attempt += 1
            if attempt > self.settings.retries:
                raise TokenRefreshUnavailable(f"{failure} after {attempt} attempts")
            await self.clock.sleep(self._backoff(attempt))


def _json_object(response: httpx.Response, path: str) -> Json:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise WhoopBadResponse(f"GET {path}: body is not JSON", response.status_code) from exc
    if not isinstance(body, dict):
        raise WhoopBadResponse(f"GET {path}: body is not a JSON object", response.status_code)
    return body
