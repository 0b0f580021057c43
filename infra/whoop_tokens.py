"""WHOOP's token endpoint and the single-flight refresh: the one token client of the edge and the fetcher.

:class:`TokenEndpoint` posts to ``/oauth/oauth2/token`` (``whoop-api-v2.md`` §2, form-encoded,
``client_secret_post``): the authorization-code exchange and the refresh (``scope=offline``; WHOOP
rotates both tokens). It makes one attempt and raises :class:`TokenEndpointUnavailable` (network
error, 429, 5xx: retry later), :class:`TokenRefused` (a definite no, with fosite's ``error`` code) or
:class:`TokenResponseInvalid`; each stage maps these onto its own errors and retry policy.

:func:`refresh_locked` is the row-locked refresh: under the lock of the member's ``whoop_tokens`` row
(``TokenVault.load(..., for_update=True)``), whoever comes first refreshes and stores the new pair
before anyone uses it; whoever waited finds the pair it should keep and does not call WHOOP (two
refreshes racing with one rotated refresh token would kill the connection). No token or secret ever
goes into an exception message or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

import asyncpg
import httpx
import orjson

from infra.errors import PipelineError
from infra.settings import WhoopAppSettings
from infra.vault import Executor, TokenPair, TokenVault

__all__ = [
    "TOKEN_PATH",
    "TokenEndpoint",
    "TokenEndpointError",
    "TokenEndpointUnavailable",
    "TokenGrant",
    "TokenRefused",
    "TokenResponseInvalid",
    "parse_grant",
    "refresh_locked",
]

TOKEN_PATH = "/oauth/oauth2/token"  # noqa: S105 - a URL path, not a secret
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")


class TokenEndpointError(PipelineError):
    """The token endpoint did not give us a grant; ``code`` is safe to show, ``status`` WHOOP's answer."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TokenEndpointUnavailable(TokenEndpointError):
    """Network error, timeout, 429 or 5xx: retrying later may help."""


class TokenRefused(TokenEndpointError):
    """A definite refusal (``invalid_grant``, ``invalid_client`` ...): ``code`` is fosite's ``error``."""


class TokenResponseInvalid(TokenEndpointError):
    """A 200 whose body is not a usable grant."""


@dataclass(frozen=True)
class TokenGrant:
    """A token-endpoint answer; ``repr`` never shows the tokens."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: int
    scopes: tuple[str, ...]

    def pair(self, now: datetime) -> TokenPair:
        """The vault's form of this grant, expiring ``expires_in`` after ``now``."""
        return TokenPair(
            self.access_token, self.refresh_token, now + timedelta(seconds=self.expires_in), self.scopes
        )


def parse_grant(status: int, content: bytes) -> TokenGrant:
    """The grant in a token-endpoint answer below 500 (not 429), or TokenRefused / TokenResponseInvalid."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "token_error"
        raise TokenRefused(code, f"WHOOP token endpoint refused: {code}", status)
    if not isinstance(body, dict):
        raise TokenResponseInvalid(
            "token_response_invalid", "WHOOP's token response is not a JSON object", 200
        )
    access, refresh, expires_in = body.get("access_token"), body.get("refresh_token"), body.get("expires_in")
    if not isinstance(access, str) or not access:
        raise TokenResponseInvalid(
            "token_response_invalid", "WHOOP's token response has no access_token", 200
        )
    if refresh is not None and not isinstance(refresh, str):
        raise TokenResponseInvalid("token_response_invalid", "WHOOP's refresh_token is not a string", 200)
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        expires_in = 3600
    scope = body.get("scope")
    scopes = tuple(sorted(scope.split())) if isinstance(scope, str) else ()
    return TokenGrant(access, refresh or None, expires_in, scopes)


class TokenEndpoint:
    """WHOOP's token endpoint over the caller's ``httpx.AsyncClient`` (base URL ``WHOOP_API_BASE_URL``)."""

    def __init__(self, http: httpx.AsyncClient, app: WhoopAppSettings) -> None:
        self._http = http
        self._app = app

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> TokenGrant:
        """Exchange ``code``; ``code_verifier`` is None only for a state stored before PKCE."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        return await self._post(form)

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """Exchange ``refresh_token`` for a new grant (WHOOP rotates both tokens)."""
        return await self._post(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": "offline"}
        )

    async def _post(self, form: dict[str, str]) -> TokenGrant:
        form = {
            **form,
            "client_id": self._app.whoop_client_id,
            "client_secret": self._app.whoop_client_secret.get_secret_value(),
        }
        try:
            response = await self._http.post(
                TOKEN_PATH,
                content=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TokenEndpointUnavailable(
                "whoop_unreachable", f"WHOOP token endpoint: {type(exc).__name__}"
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TokenEndpointUnavailable(
                "whoop_unavailable",
                f"WHOOP token endpoint answered {response.status_code}",
                response.status_code,
            )
        return parse_grant(response.status_code, response.content)


Refresh = Callable[[Executor, TokenPair], Awaitable[TokenPair | None]]


async def refresh_locked(
    pool: asyncpg.Pool, vault: TokenVault, user_id: str, keep: Callable[[TokenPair], bool], refresh: Refresh
) -> TokenPair | None:
    """Refresh the member's pair single-flight across processes, in one transaction on the row lock.

    The stored pair is returned untouched when ``keep(stored)`` (someone refreshed while we waited);
    otherwise ``refresh(db, stored)`` gives the new pair, stored before the commit. ``refresh`` may
    return None to store nothing (it recorded why on ``db``, which commits). None when no pair is
    stored or ``refresh`` gave none; an exception from ``refresh`` rolls everything back.
    """
    async with pool.acquire() as db, db.transaction():
        current = await vault.load(db, user_id, for_update=True)
        if current is None or keep(current):
            return current
        fresh = await refresh(db, current)
        if fresh is not None:
            await vault.store(db, user_id, fresh)
        return fresh
