"""``WhoopApi``: the data API as the fetcher's work uses it, one member at a time.

The port is what the fetch logic needs (``get`` a path as a member, at a priority); the adapter
:class:`MemberWhoop` adds the member's access token from :class:`~processors.tokens.TokenManager`
and, on a 401, refreshes once (single-flight) and retries once (``whoop-api-v2.md`` §8). A second
401 raises :class:`~processors.errors.WhoopUnauthorized`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import JsonValue

from processors.errors import WhoopUnauthorized
from processors.quota import Priority
from processors.resources import Member
from processors.tokens import TokenManager
from processors.whoop_client import WhoopClient

__all__ = ["MemberWhoop", "WhoopApi"]

Json = dict[str, JsonValue]


class WhoopApi(Protocol):
    """WHOOP's data API, per member."""

    async def get(
        self,
        member: Member,
        path: str,
        *,
        priority: Priority,
        params: Mapping[str, str | int] | None = None,
    ) -> Json: ...


class MemberWhoop:
    """:class:`WhoopApi` on the process's :class:`WhoopClient` and :class:`TokenManager`."""

    def __init__(self, client: WhoopClient, tokens: TokenManager) -> None:
        self._client = client
        self._tokens = tokens

    async def get(
        self,
        member: Member,
        path: str,
        *,
        priority: Priority,
        params: Mapping[str, str | int] | None = None,
    ) -> Json:
        token = await self._tokens.access_token(member)
        try:
            return await self._client.get(path, access_token=token, priority=priority, params=params)
        except WhoopUnauthorized:
            token = await self._tokens.after_unauthorized(member, token)
        return await self._client.get(path, access_token=token, priority=priority, params=params)
