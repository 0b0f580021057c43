"""The limits every HTTP server of the pipeline applies to its clients, and the settings they come from.

:class:`HttpLimits` is what :func:`infra.http_server.server_config` enforces: how long a client may
take to send a request's headers and then its body, how long an idle keep-alive connection stays
open, how many connections are served at once, and which proxies may name the client's address.
A service's settings class derives from :class:`HttpServerSettings` to read them from its own
prefix (``INGEST_HEADER_TIMEOUT_S``, ``PROJECTIONS_MAX_CONNECTIONS``, ``SIMULATOR_BODY_TIMEOUT_S``...).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from infra.settings import CsvItems, ServiceSettings

__all__ = ["HttpLimits", "HttpServerSettings"]

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 1000


@dataclass(frozen=True)
class HttpLimits:
    """Deadlines (seconds) and bounds of one HTTP server."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    keep_alive_s: int = KEEP_ALIVE_S
    max_connections: int = MAX_CONNECTIONS
    trusted_proxies: tuple[str, ...] = ()


class HttpServerSettings(ServiceSettings):
    """The HTTP server part of a service's settings (the fields take the subclass's prefix)."""

    header_timeout_s: float = Field(
        default=HEADER_TIMEOUT_S,
        gt=0,
        le=300,
        description="Longest time a client may take to send a request's line and headers, seconds (from "
        "the connection's opening, or from the request's first byte on a kept-alive connection); then "
        "408 and the connection is closed (closed silently if nothing was sent).",
    )
    body_timeout_s: float = Field(
        default=BODY_TIMEOUT_S,
        gt=0,
        le=300,
        description="Longest time a client may take to send a request's body once its headers are in, "
        "seconds; then 408 (or a close when the answer has started).",
    )
    keep_alive_s: int = Field(
        default=KEEP_ALIVE_S,
        ge=1,
        le=300,
        description="How long an idle kept-alive connection stays open between requests, seconds.",
    )
    max_connections: int = Field(
        default=MAX_CONNECTIONS,
        ge=1,
        le=100_000,
        description="Bound on open connections, idle ones included: a request arriving while this many "
        "are open (its own counted) is answered 503 at once.",
    )
    trusted_proxies: CsvItems = Field(
        default=(),
        description="Comma-separated addresses (or CIDRs, or *) of the proxies whose X-Forwarded-For names "
        "the client; empty: the peer address is the client (throttling of failed authentications is per "
        "client address).",
    )

    def http_limits(self) -> HttpLimits:
        """These settings as the limits of :func:`infra.http_server.server_config`."""
        return HttpLimits(
            header_timeout_s=self.header_timeout_s,
            body_timeout_s=self.body_timeout_s,
            keep_alive_s=self.keep_alive_s,
            max_connections=self.max_connections,
            trusted_proxies=self.trusted_proxies,
        )
