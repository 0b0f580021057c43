"""WHOOP's OAuth server and the two API calls the edge needs: the port and its httpx adapter.

``whoop-api-v2.md`` §2: authorize at ``/oauth/oauth2/auth`` (all read scopes plus ``offline``),
exchange and refresh at ``/oauth/oauth2/token`` through the shared token client
(``infra.whoop_tokens.TokenEndpoint``, form-encoded, ``client_secret_post``), the member id
from ``GET /developer/v2/user/profile/basic`` (§6.5), and revocation with
``DELETE /developer/v2/user/access`` (§2.8). Every authorization carries a PKCE S256 challenge and its
exchange the verifier (RFC 7636; Hydra honours it). Token-endpoint errors are fosite JSON; we branch on
``error`` only. Definite refusals raise :class:`WhoopRejected`, network trouble, 429 and 5xx raise
:class:`WhoopUnavailable`. No token or secret ever goes into an exception message or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol
from urllib.parse import quote, urlencode

import httpx

from infra.settings import WhoopAppSettings
from infra.whoop_tokens import TokenEndpoint, TokenEndpointError, TokenEndpointUnavailable, TokenGrant
from ingest.errors import WhoopRejected, WhoopUnavailable
from schemas.whoop import SCOPES

__all__ = ["SCOPES", "HttpWhoopOAuth", "TokenGrant", "WhoopOAuth", "authorization_url"]

logger = logging.getLogger(__name__)

_USER_AGENT = "whoop-pipeline-ingest/0.1"


def authorization_url(
    api_base_url: str, client_id: str, redirect_uri: str, state: str, code_challenge: str
) -> str:
    """The WHOOP consent URL for our scopes, with the PKCE S256 ``code_challenge`` (pure)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(SCOPES),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        },
        quote_via=quote,
    )
    return f"{api_base_url.rstrip('/')}/oauth/oauth2/auth?{query}"


class WhoopOAuth(Protocol):
    """WHOOP as the edge uses it."""

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str: ...
    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> TokenGrant: ...
    async def refresh(self, refresh_token: str) -> TokenGrant: ...
    async def fetch_member_id(self, access_token: str) -> int: ...
    async def revoke_access(self, access_token: str) -> None: ...


class HttpWhoopOAuth:
    """:class:`WhoopOAuth` over one ``httpx.AsyncClient`` (its base URL is ``WHOOP_API_BASE_URL``)."""

    def __init__(self, client: httpx.AsyncClient, app: WhoopAppSettings) -> None:
        self._client = client
        self._app = app
        self._tokens = TokenEndpoint(client, app)

    @classmethod
    def create(
        cls, app: WhoopAppSettings, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> HttpWhoopOAuth:
        """An adapter with its own client (close it with :meth:`aclose`)."""
        client = httpx.AsyncClient(
            base_url=app.whoop_api_base_url,
            timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": _USER_AGENT},
            transport=transport,
            follow_redirects=False,
        )
        return cls(client, app)

    async def aclose(self) -> None:
        await self._client.aclose()

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        return authorization_url(
            self._app.whoop_api_base_url, self._app.whoop_client_id, redirect_uri, state, code_challenge
        )

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> TokenGrant:
        """Exchange ``code``; ``code_verifier`` is None only for a state stored before PKCE."""
        with _as_whoop_errors():
            return await self._tokens.exchange_code(code, redirect_uri, code_verifier)

    async def refresh(self, refresh_token: str) -> TokenGrant:
        with _as_whoop_errors():
            return await self._tokens.refresh(refresh_token)

    async def fetch_member_id(self, access_token: str) -> int:
        response = await self._send("GET", "/developer/v2/user/profile/basic", access_token)
        if response.status_code != 200:
            raise WhoopRejected(
                "whoop_profile_refused", "WHOOP refused the profile request", response.status_code
            )
        try:
            member_id = response.json()["user_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise WhoopRejected("whoop_profile_invalid", "WHOOP's profile has no user_id", 200) from exc
        if not isinstance(member_id, int) or isinstance(member_id, bool) or member_id < 0:
            raise WhoopRejected("whoop_profile_invalid", "WHOOP's profile user_id is not an integer", 200)
        return member_id

    async def revoke_access(self, access_token: str) -> None:
        response = await self._send("DELETE", "/developer/v2/user/access", access_token)
        if response.status_code not in (200, 204):
            raise WhoopRejected("whoop_revoke_refused", "WHOOP refused the revocation", response.status_code)

    async def _send(self, method: str, path: str, access_token: str) -> httpx.Response:
        try:
            response = await self._client.request(
                method, path, headers={"Authorization": f"Bearer {access_token}"}
            )
        except httpx.HTTPError as exc:
            raise WhoopUnavailable("whoop_unreachable", f"WHOOP {path}: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise WhoopUnavailable(
                "whoop_unavailable", f"WHOOP {path} answered {response.status_code}", response.status_code
            )
        return response


@contextmanager
def _as_whoop_errors() -> Iterator[None]:
    """The shared token client's errors as the edge's (same code, message and status)."""
    try:
        yield
    except TokenEndpointUnavailable as exc:
        raise WhoopUnavailable(exc.code, str(exc), exc.status) from exc
    except TokenEndpointError as exc:
        raise WhoopRejected(exc.code, str(exc), exc.status) from exc
