"""The OAuth 2.0 authorization server (§2, §13), modelled on Ory Hydra, without any HTTP.

Authorization codes are single-use with a TTL and honour PKCE (RFC 7636, S256 only, as Hydra by
default): a code whose authorization carried a ``code_challenge`` is exchanged only with the matching
``code_verifier`` (else ``invalid_grant``, and the code stays usable, as in fosite); a verifier sent for a
code without a challenge is ``invalid_grant`` too. Tokens are opaque ``<43>.<43>`` url-safe strings;
a refresh token comes only with the ``offline`` scope, and a refresh **rotates**: the previous
access and refresh tokens die at once and reusing the old refresh token is ``invalid_grant``.
Test hooks: force-expire a member's access tokens, revoke a grant, make the next refreshes fail.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from schemas.whoop import SCOPES as WHOOP_SCOPES
from simulator.clock import Clock

__all__ = ["SCOPES", "Authority", "AuthorizeOutcome", "Client", "Grant", "OAuthError", "new_token"]

Json = dict[str, Any]
SCOPES = frozenset(WHOOP_SCOPES)
"""The scopes a client may ask for: all that WHOOP defines."""
_INVALID_GRANT = (
    "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh "
    "token is invalid, expired, revoked, does not match the redirection URI used in the authorization "
    "request, or was issued to another client."
)
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def new_token() -> str:
    """An opaque Hydra-style token: two 43-character url-safe parts joined by a dot."""
    return f"{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(32)}"


class OAuthError(Exception):
    """A token-endpoint error, rendered as fosite JSON ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> Json:
        """The JSON error body."""
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True, slots=True)
class Client:
    """A registered WHOOP app."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    webhook_url: str


@dataclass(slots=True)
class Grant:
    """One live token pair of one member for one app."""

    client_id: str
    user_id: int
    scopes: frozenset[str]
    access_token: str
    refresh_token: str | None
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class AuthorizeOutcome:
    """Either a redirect (``location``) or an HTML error page (``status`` and ``message``)."""

    location: str | None = None
    status: int = 302
    message: str = ""


@dataclass(slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    user_id: int
    scopes: frozenset[str]
    expires_at_ms: int
    code_challenge: str | None = None
    used: bool = False
    issued_access: str | None = None


def _pkce_matches(challenge: str | None, verifier: str) -> bool:
    """RFC 7636 §4.6: ``BASE64URL(SHA256(verifier)) == challenge``; neither present also passes."""
    if challenge is None:
        return not verifier
    if not _VERIFIER.fullmatch(verifier):
        return False
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=")
    return secrets.compare_digest(digest.decode("ascii"), challenge)


def _redirect(uri: str, params: Mapping[str, str]) -> str:
    separator = "&" if "?" in uri else "?"
    return f"{uri}{separator}{urlencode(params)}"


class Authority:
    """Clients, codes and grants; the state behind ``/oauth/oauth2/auth`` and ``/oauth/oauth2/token``."""

    def __init__(
        self,
        clients: Iterable[Client],
        clock: Clock,
        *,
        token_lifetime_s: int,
        code_ttl_s: int,
        mode: str = "approve",
        token_factory: Callable[[], str] = new_token,
    ) -> None:
        self.clients = {client.client_id: client for client in clients}
        self._clock = clock
        self.token_lifetime_s = token_lifetime_s
        self._code_ttl_ms = code_ttl_s * 1000
        self.mode = mode
        self._new_token = token_factory
        self._codes: dict[str, _Code] = {}
        self._by_access: dict[str, Grant] = {}
        self._by_refresh: dict[str, Grant] = {}
        self._connected: set[tuple[str, int]] = set()
        self._failing_refreshes: dict[int | None, tuple[int, str]] = {}
        self.next_users: deque[int] = deque()

    # -- authorization endpoint -------------------------------------------------------------
    def authorize(self, params: Mapping[str, str], member_ids: list[int]) -> AuthorizeOutcome:
        """Validate an authorization request and auto-approve (or deny) a simulated member."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return AuthorizeOutcome(status=401, message="invalid_client: Client authentication failed.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return AuthorizeOutcome(
                status=400,
                message='invalid_request: The "redirect_uri" parameter does not match any of the OAuth 2.0 '
                "Client's pre-registered redirect urls.",
            )
        state = params.get("state", "")
        scopes = frozenset(params.get("scope", "").split())

        def fail(error: str, description: str) -> AuthorizeOutcome:
            return AuthorizeOutcome(
                location=_redirect(
                    redirect_uri, {"error": error, "error_description": description, "state": state}
                )
            )

        if params.get("response_type") != "code":
            return fail(
                "unsupported_response_type", "The authorization server does not support this response type."
            )
        if not scopes or not scopes <= SCOPES:
            return fail("invalid_scope", "The requested scope is invalid, unknown, or malformed.")
        if len(state) < 8:
            return fail("invalid_state", "The state is missing or does not have enough characters.")
        challenge = params.get("code_challenge") or None
        if challenge is not None and params.get("code_challenge_method") != "S256":
            return fail(
                "invalid_request", "Clients must use code_challenge_method=S256, plain is not allowed."
            )
        if challenge is not None and not _CHALLENGE.fullmatch(challenge):
            return fail("invalid_request", "The code_challenge is malformed.")
        if self.mode == "deny" or not member_ids:
            return fail("access_denied", "The resource owner denied the request.")
        user_id = self._pick_member(client.client_id, params.get("login_hint"), member_ids)
        if user_id is None:
            return fail("access_denied", "Unknown member.")
        code = self._new_token()
        self._codes[code] = _Code(
            client.client_id,
            redirect_uri,
            user_id,
            scopes,
            self._clock.now_ms() + self._code_ttl_ms,
            challenge,
        )
        return AuthorizeOutcome(
            location=_redirect(
                redirect_uri, {"code": code, "scope": " ".join(sorted(scopes)), "state": state}
            )
        )

    def _pick_member(self, client_id: str, hint: str | None, member_ids: list[int]) -> int | None:
        if hint:
            return int(hint) if hint.isdigit() and int(hint) in member_ids else None
        while self.next_users:
            candidate = self.next_users.popleft()
            if candidate in member_ids:
                return candidate
        for candidate in member_ids:
            if (client_id, candidate) not in self._connected:
                return candidate
        return member_ids[0]

    # -- token endpoint ---------------------------------------------------------------------
    def token(self, form: Mapping[str, str], basic: tuple[str, str] | None = None) -> Json:
        """Handle a token request (code exchange or refresh); raise :class:`OAuthError`."""
        client_id, secret = (
            basic if basic is not None else (form.get("client_id", ""), form.get("client_secret", ""))
        )
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, secret):
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(client, form)
        if grant_type == "refresh_token":
            return self._refresh(client, form)
        raise OAuthError("unsupported_grant_type", "The authorization grant type is not supported.")

    def _exchange(self, client: Client, form: Mapping[str, str]) -> Json:
        code = self._codes.get(form.get("code", ""))
        now = self._clock.now_ms()
        if (
            code is None
            or code.client_id != client.client_id
            or code.redirect_uri != form.get("redirect_uri")
        ):
            raise OAuthError("invalid_grant", _INVALID_GRANT)
        if code.used:
            if code.issued_access is not None:  # Hydra revokes what a replayed code had issued
                self._drop(self._by_access.get(code.issued_access))
            raise OAuthError("invalid_grant", _INVALID_GRANT)
        if now >= code.expires_at_ms:
            raise OAuthError("invalid_grant", _INVALID_GRANT)
        if not _pkce_matches(code.code_challenge, form.get("code_verifier", "")):
            raise OAuthError("invalid_grant", _INVALID_GRANT)  # the code is not spent (fosite)
        code.used = True
        grant = self._mint(client.client_id, code.user_id, code.scopes)
        code.issued_access = grant.access_token
        return self._response(grant)

    def _refresh(self, client: Client, form: Mapping[str, str]) -> Json:
        old = self._by_refresh.get(form.get("refresh_token", ""))
        if old is None or old.client_id != client.client_id:
            raise OAuthError("invalid_grant", _INVALID_GRANT)
        requested = frozenset(form.get("scope", "").split())
        if not requested <= old.scopes:
            raise OAuthError("invalid_scope", "The requested scope is invalid, unknown, or malformed.")
        for key in (old.user_id, None):
            failing = self._failing_refreshes.get(key)
            if failing is not None:
                remaining, error = failing
                if remaining <= 1:
                    del self._failing_refreshes[key]
                else:
                    self._failing_refreshes[key] = (remaining - 1, error)
                if error == "invalid_grant":
                    self._drop(old)
                    raise OAuthError("invalid_grant", _INVALID_GRANT)
                raise OAuthError("server_error", "The authorization server encountered an error.", 500)
        self._drop(old)
        return self._response(self._mint(old.client_id, old.user_id, old.scopes))

    def _mint(self, client_id: str, user_id: int, scopes: frozenset[str]) -> Grant:
        grant = Grant(
            client_id,
            user_id,
            scopes,
            self._new_token(),
            self._new_token() if "offline" in scopes else None,
            self._clock.now_ms() + self.token_lifetime_s * 1000,
        )
        self._by_access[grant.access_token] = grant
        if grant.refresh_token is not None:
            self._by_refresh[grant.refresh_token] = grant
        self._connected.add((client_id, user_id))
        return grant

    def _drop(self, grant: Grant | None) -> None:
        if grant is None:
            return
        self._by_access.pop(grant.access_token, None)
        if grant.refresh_token is not None:
            self._by_refresh.pop(grant.refresh_token, None)

    def _response(self, grant: Grant) -> Json:
        body: Json = {"access_token": grant.access_token, "expires_in": self.token_lifetime_s}
        if grant.refresh_token is not None:
            body["refresh_token"] = grant.refresh_token
        body["scope"] = " ".join(sorted(grant.scopes))
        body["token_type"] = "bearer"  # noqa: S105 - the token type, not a secret
        return body

    # -- resource server and test hooks -----------------------------------------------------
    def authenticate(self, access_token: str) -> Grant | None:
        """The live grant of a bearer token, or ``None`` when unknown, rotated, revoked or expired."""
        grant = self._by_access.get(access_token)
        if grant is None or self._clock.now_ms() >= grant.expires_at_ms:
            return None
        return grant

    def issue(self, client_id: str, user_id: int, scopes: Iterable[str]) -> Json:
        """Mint a token pair directly (control API: connect a member without the browser dance)."""
        wanted = frozenset(scopes)
        if client_id not in self.clients or not wanted <= SCOPES:
            raise OAuthError("invalid_request", "Unknown client or scope.")
        return self._response(self._mint(client_id, user_id, wanted))

    def grants_of(self, user_id: int) -> list[Grant]:
        """Every live grant of a member."""
        return [grant for grant in self._by_access.values() if grant.user_id == user_id]

    def revoke(self, client_id: str, user_id: int) -> None:
        """``DELETE /v2/user/access``: every token of the member for this app dies, webhooks stop."""
        for grant in [
            g for g in self._by_access.values() if g.user_id == user_id and g.client_id == client_id
        ]:
            self._drop(grant)
        for grant in [
            g for g in self._by_refresh.values() if g.user_id == user_id and g.client_id == client_id
        ]:
            self._drop(grant)
        self._connected.discard((client_id, user_id))

    def expire(self, user_id: int) -> int:
        """Force-expire the member's access tokens (refresh tokens stay valid); returns how many."""
        grants = self.grants_of(user_id)
        for grant in grants:
            grant.expires_at_ms = self._clock.now_ms()
        return len(grants)

    def fail_refreshes(self, user_id: int | None, count: int, error: str) -> None:
        """Make the next ``count`` refreshes (of one member, or anyone) fail with ``invalid_grant`` or 500."""
        self._failing_refreshes[user_id] = (count, error)

    def is_connected(self, client_id: str, user_id: int) -> bool:
        """Whether the member has authorized the app and not revoked it (webhooks flow)."""
        return (client_id, user_id) in self._connected
