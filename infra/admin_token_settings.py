"""The admin-token part of a stage's settings: ``<PREFIX>ADMIN_TOKENS``, checked at start-up.

Ingest and the query API each accept admin tokens configured as hashes, under their own variable
and with their own scopes (see :mod:`infra.admin_tokens`). A stage's settings class derives from
:class:`AdminTokenSettings`, names its scopes and declares the ``admin_tokens`` field itself (so
it keeps its place and description in the generated configuration reference); this base checks
the items when the settings are read and parses them on demand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from pydantic import field_validator

from infra.admin_tokens import AdminToken, parse_admin_token_items
from infra.settings import ServiceSettings

__all__ = ["AdminTokenSettings"]


class AdminTokenSettings(ServiceSettings):
    """Settings with an ``admin_tokens`` field (``label:sha256hex:scope+scope`` items)."""

    admin_scopes: ClassVar[frozenset[str]] = frozenset()
    """The scopes a token of this stage may carry."""

    if TYPE_CHECKING:  # declared by each subclass, where it stands in its own field order
        admin_tokens: tuple[str, ...]

    @classmethod
    def parse_admin_tokens(cls, items: Iterable[str]) -> tuple[AdminToken, ...]:
        """Parse ``<PREFIX>ADMIN_TOKENS`` items; raise ValueError naming the bad item (never its hash)."""
        variable = f"{cls.model_config.get('env_prefix', '')}ADMIN_TOKENS"
        return parse_admin_token_items(items, variable=variable, allowed_scopes=cls.admin_scopes)

    @field_validator("admin_tokens", check_fields=False)
    @classmethod
    def _check_admin_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cls.parse_admin_tokens(value)
        return value

    def admin(self) -> tuple[AdminToken, ...]:
        """The parsed admin tokens."""
        return self.parse_admin_tokens(self.admin_tokens)
