"""Who is calling: ``Authorization: Bearer <token>`` → a user principal or a scoped admin principal.

User tokens live hashed in ``api_tokens`` (``infra.vault.ApiTokens``); admin tokens are configured
as hashes in ``INGEST_ADMIN_TOKENS`` and compared in constant time. A user token only ever grants
its own user: asking for another user's resource is answered 404, so ids do not leak.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from infra.vault import hash_token
from ingest.services import Services

__all__ = ["AccessDenied", "Principal", "authenticate", "authorize_for_user"]


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


async def authenticate(request: Request, services: Services) -> Principal:
    """The caller, or AccessDenied(401)."""
    token = _bearer(request)
    if token is None:
        raise AccessDenied(401, "unauthenticated", "send Authorization: Bearer <token>")
    digest = hash_token(token)
    for admin in services.admin_tokens:
        if hmac.compare_digest(admin.token_hash, digest):
            return Principal("admin", admin.label, scopes=admin.scopes)
    principal = await services.require_store().authenticate(token)
    if principal is None:
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
