"""Who is calling: ``Authorization: Bearer <token>`` → a user principal or a scoped admin principal.

User tokens live hashed in ``api_tokens`` (``infra.vault.ApiTokens``); admin tokens are configured
as hashes in ``INGEST_ADMIN_TOKENS`` and compared in constant time. A user token only ever grants
its own user: asking for another user's resource is answered 404, so ids do not leak.

A client address whose bearer tokens failed ``INGEST_AUTH_FAILURES_MAX`` times within
``INGEST_AUTH_FAILURE_WINDOW_S`` (unknown or revoked tokens; a missing or malformed header costs no
lookup and is not counted) is answered 429 ``too_many_failed_authentications`` with ``Retry-After``
before any token lookup (``infra.auth_throttle``): guessing tokens costs the database nothing.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from infra.auth_throttle import client_key
from infra.vault import hash_token
from ingest.http import error_response
from ingest.services import Services

__all__ = [
    "AccessDenied",
    "AuthenticationThrottled",
    "Principal",
    "authenticate",
    "authorize_for_user",
    "throttled_response",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """A caller: ``user_id`` for a user token, ``admin`` label and scopes for an admin token."""

    kind: str
    name: str
    user_id: str | None = None
    scopes: frozenset[str] = frozenset()


class AccessDenied(Exception):
    """The request may not proceed: ``status`` 401, 403 or 404 and a machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bearer(request: Request) -> str | None:
    values = request.headers.getlist("authorization")
    if len(values) != 1:
        return None
    scheme, _, token = values[0].partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256 or not token.isascii():
        return None
    return token


class AuthenticationThrottled(Exception):
    """Too many failed authentications from the caller's address; the app answers 429 (see
    :func:`throttled_response`), so every route that authenticates refuses the same way."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many failed authentications")
        self.retry_after_s = retry_after_s


async def throttled_response(request: Request, exc: Exception) -> Response:
    """The app's handler of :class:`AuthenticationThrottled`: 429 with Retry-After."""
    retry_after = exc.retry_after_s if isinstance(exc, AuthenticationThrottled) else 60
    return error_response(
        429,
        "too_many_failed_authentications",
        "too many failed authentications from this address; retry later",
        {"Retry-After": str(retry_after)},
    )


async def authenticate(request: Request, services: Services) -> Principal:
    """The caller; AccessDenied(401), or AuthenticationThrottled when the address failed too often."""
    client = client_key(request.client.host if request.client else None)
    retry_after = services.auth_failures.retry_after(client)
    if retry_after is not None:
        raise AuthenticationThrottled(retry_after)
    token = _bearer(request)
    if token is None:
        raise AccessDenied(401, "unauthenticated", "send Authorization: Bearer <token>")
    digest = hash_token(token)
    for admin in services.admin_tokens:
        if hmac.compare_digest(admin.token_hash, digest):
            return Principal("admin", admin.label, scopes=admin.scopes)
    principal = await services.require_store().authenticate(token)
    if principal is None:
        services.auth_failures.failed(client)
        if services.auth_failures.retry_after(client) is not None:
            logger.warning("client %s refused for a while: too many failed authentications", client)
        raise AccessDenied(401, "invalid_token", "the token is unknown or revoked")
    return Principal(
        "user", principal.token_id, user_id=principal.user_id, scopes=frozenset(principal.scopes)
    )


def authorize_for_user(principal: Principal, user_id: str, admin_scope: str) -> None:
    """Allow the user themself, or an admin holding ``admin_scope``; else AccessDenied."""
    if principal.kind == "admin":
        if admin_scope not in principal.scopes:
            raise AccessDenied(403, "insufficient_scope", f"this admin token lacks the {admin_scope!r} scope")
        return
    if principal.user_id != user_id:
        raise AccessDenied(404, "not_found", "no such user")
