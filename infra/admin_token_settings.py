"""The admin-token part of a stage's settings: ``<PREFIX>ADMIN_TOKENS``, checked at start-up.

Ingest and the query API each accept admin tokens configured as hashes, under their own variable
and with their own scopes (see :mod:`infra.admin_tokens`). A stage's settings class derives from
:class:`AdminTokenSettings`, names its scopes and declares the ``admin_tokens`` field itself (so
it keeps its place and description in the generated configuration reference); this base checks
the items when the settings are read, parses them on demand and makes new tokens for the stage's
``admin-token`` command.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from pydantic import field_validator

from infra.admin_tokens import AdminToken, parse_admin_token_items
from infra.settings import ServiceSettings
from infra.vault import hash_token

__all__ = ["AdminTokenSettings"]


class AdminTokenSettings(ServiceSettings):
    """Settings with an ``admin_tokens`` field (``label:sha256hex:scope+scope`` items)."""

    admin_scopes: ClassVar[frozenset[str]] = frozenset()
    """The scopes a token of this stage may carry."""

    if TYPE_CHECKING:  # declared by each subclass, where it stands in its own field order
        admin_tokens: tuple[str, ...]

    @classmethod
    def admin_tokens_variable(cls) -> str:
        """The environment variable of the admin tokens: ``<PREFIX>ADMIN_TOKENS``."""
        return f"{cls.model_config.get('env_prefix', '')}ADMIN_TOKENS"

    @classmethod
    def parse_admin_tokens(cls, items: Iterable[str]) -> tuple[AdminToken, ...]:
        """Parse ``<PREFIX>ADMIN_TOKENS`` items; raise ValueError naming the bad item (never its hash)."""
        return parse_admin_token_items(
            items, variable=cls.admin_tokens_variable(), allowed_scopes=cls.admin_scopes
        )

    @classmethod
    def new_admin_token(cls, label: str, scopes: str) -> tuple[str, str]:
        """A fresh token and its ``<PREFIX>ADMIN_TOKENS`` item (``label:sha256hex:scopes``); ValueError,
        before any token is shown, when the label or a scope is refused."""
        token = "wpa_" + secrets.token_urlsafe(32)
        item = f"{label}:{hash_token(token)}:{scopes}"
        cls.parse_admin_tokens((item,))
        return token, item

    @field_validator("admin_tokens", check_fields=False)
    @classmethod
    def _check_admin_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cls.parse_admin_tokens(value)
        return value

    def admin(self) -> tuple[AdminToken, ...]:
        """The parsed admin tokens."""
        return self.parse_admin_tokens(self.admin_tokens)
