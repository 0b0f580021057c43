"""Who is calling an HTTP stage: the bearer token of a request and the :class:`Principal` it names.

Both HTTP stages (ingest and the query API) authenticate ``Authorization: Bearer <token>`` the same
way: exactly one header, scheme ``Bearer`` (any case), a token of 1 to 256 ASCII characters; a
configured admin token (``infra.admin_tokens``) is matched by its hash in constant time, a user token
is looked up in ``api_tokens`` (``infra.vault.ApiTokens``). A user token only ever grants its own
member: asking for another member's data is answered as if it did not exist, so ids do not leak.

Each stage keeps its own scope rules: it names, for each action, the admin scopes that grant it
(:meth:`Principal.refusal`), and turns a refusal into its own errors.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from infra.admin_tokens import AdminToken
from infra.vault import ApiPrincipal

__all__ = ["Principal", "Refusal", "admin_principal", "bearer_token"]

_MAX_TOKEN = 256


def bearer_token(authorization: Sequence[str]) -> str | None:
    """The token of the request's ``Authorization`` header values; None when absent or malformed."""
    if len(authorization) != 1:
        return None
    scheme, _, token = authorization[0].partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN or not token.isascii():
        return None
    return token


class Refusal(enum.Enum):
    """Why a principal may not act for a member: an admin without the scope, or someone else's member."""

    MISSING_SCOPE = "missing_scope"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Principal:
    """A caller: a member's token (``name`` is its token id, ``user_id`` its member) or an admin token
    (``name`` is its label); ``scopes`` are the token's."""

    kind: Literal["user", "admin"]
    name: str
    user_id: str | None = None
    scopes: frozenset[str] = frozenset()

    @classmethod
    def of_admin(cls, admin: AdminToken) -> Principal:
        """The principal of a configured admin token."""
        return cls("admin", admin.label, scopes=admin.scopes)

    @classmethod
    def of_user(cls, found: ApiPrincipal) -> Principal:
        """The principal of a member's API token."""
        return cls("user", found.token_id, user_id=found.user_id, scopes=frozenset(found.scopes))

    @property
    def key(self) -> str:
        """Names the token (``admin:<label>`` or ``token:<id>``), e.g. for a per-token budget."""
        return f"admin:{self.name}" if self.kind == "admin" else f"token:{self.name}"

    def refusal(self, user_id: str, granting: Collection[str]) -> Refusal | None:
        """None when this caller may act for ``user_id``: the member themself, or an admin holding one of
        the ``granting`` scopes."""
        if self.kind == "admin":
            return None if any(scope in self.scopes for scope in granting) else Refusal.MISSING_SCOPE
        return None if self.user_id == user_id else Refusal.NOT_FOUND


def admin_principal(admin_tokens: Sequence[AdminToken], digest: str) -> Principal | None:
    """The admin whose configured hash is ``digest`` (compared in constant time), or None."""
    for admin in admin_tokens:
        if hmac.compare_digest(admin.token_hash, digest):
            return Principal.of_admin(admin)
    return None
