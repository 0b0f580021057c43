"""Who is calling: ``Authorization: Bearer <token>`` → a user principal or a scoped admin principal
(``infra.principal``: the parser and the principal the query API shares).

User tokens live hashed in ``api_tokens`` (``infra.vault.ApiTokens``); admin tokens are configured
as hashes in ``INGEST_ADMIN_TOKENS`` and compared in constant time. A user token only ever grants
its own user: asking for another user's resource is answered 404, so ids do not leak.

A client address whose bearer tokens failed ``INGEST_AUTH_FAILURES_MAX`` times within
``INGEST_AUTH_FAILURE_WINDOW_S`` (unknown or revoked tokens; a missing or malformed header costs no
lookup and is not counted) is answered 429 ``too_many_failed_authentications`` with ``Retry-After``
before any token lookup (``infra.auth_throttle``): guessing tokens costs the database nothing.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from infra.auth_throttle import client_key
from infra.principal import Principal, Refusal, admin_principal, bearer_token
from infra.vault import hash_token
from ingest.http import error_response
from ingest.services import Services

__all__ = [
    "AccessDenied",
    "AuthenticationThrottled",
    "Principal",
    "authenticate",
    "authenticated",
    "authorize_for_user",
    "throttled_response",
]

logger = logging.getLogger(__name__)


class AccessDenied(Exception):
    """The request may not proceed: ``status`` 401, 403 or 404 and a machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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
    token = bearer_token(request.headers.getlist("authorization"))
    if token is None:
        raise AccessDenied(401, "unauthenticated", "send Authorization: Bearer <token>")
    admin = admin_principal(services.admin_tokens, hash_token(token))
    if admin is not None:
        return admin
    found = await services.require_store().authenticate(token)
    if found is None:
        services.auth_failures.failed(client)
        if services.auth_failures.retry_after(client) is not None:
            logger.warning("client %s refused for a while: too many failed authentications", client)
        raise AccessDenied(401, "invalid_token", "the token is unknown or revoked")
    return Principal.of_user(found)


async def authenticated(request: Request, services: Services) -> Principal | Response:
    """The caller, or the error response that refuses it (AuthenticationThrottled still raises)."""
    try:
        return await authenticate(request, services)
    except AccessDenied as exc:
        return error_response(exc.status, exc.code, exc.message)


def authorize_for_user(principal: Principal, user_id: str, admin_scope: str) -> None:
    """Allow the user themself, or an admin holding ``admin_scope`` (exactly); else AccessDenied."""
    refusal = principal.refusal(user_id, (admin_scope,))
    if refusal is Refusal.MISSING_SCOPE:
        raise AccessDenied(403, "insufficient_scope", f"this admin token lacks the {admin_scope!r} scope")
    if refusal is Refusal.NOT_FOUND:
        raise AccessDenied(404, "not_found", "no such user")
