"""The limits every HTTP server of the pipeline applies to its clients, and the settings they come from.

:class:`HttpLimits` is what :func:`infra.http_server.server_config` enforces: how long a client may
take to send a request's headers and then its body, how long an idle keep-alive connection stays
open, how many connections are served at once, and which proxies may name the client's address.
A service's settings class derives from :class:`HttpServerSettings` to read them from its own
prefix (``INGEST_HEADER_TIMEOUT_S``, ``PROJECTIONS_MAX_CONNECTIONS``, ``SIMULATOR_BODY_TIMEOUT_S``...).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from pydantic import Field

from infra.settings import CsvItems, ServiceSettings, count_field, seconds_field

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

    header_timeout_s: float = seconds_field(
        HEADER_TIMEOUT_S,
        "Longest time a client may take to send a request's line and headers, seconds (from "
        "the connection's opening, or from the request's first byte on a kept-alive connection); then "
        "408 and the connection is closed (closed silently if nothing was sent).",
        most=300,
    )
    body_timeout_s: float = seconds_field(
        BODY_TIMEOUT_S,
        "Longest time a client may take to send a request's body once its headers are in, "
        "seconds; then 408 (or a close when the answer has started).",
        most=300,
    )
    keep_alive_s: int = seconds_field(
        KEEP_ALIVE_S,
        "How long an idle kept-alive connection stays open between requests, seconds.",
        least=1,
        most=300,
    )
    max_connections: int = count_field(
        MAX_CONNECTIONS,
        "Bound on open connections, idle ones included: a request arriving while this many "
        "are open (its own counted) is answered 503 at once.",
        most=100_000,
    )
    trusted_proxies: CsvItems = Field(
        default=(),
        description="Comma-separated addresses (or CIDRs, or *) of the proxies whose X-Forwarded-For names "
        "the client; empty: the peer address is the client (throttling of failed authentications is per "
        "client address).",
    )

    def http_limits(self) -> HttpLimits:
        """These settings as the limits of :func:`infra.http_server.server_config` (each limit is read
        from the setting of the same name)."""
        return HttpLimits(**{limit.name: getattr(self, limit.name) for limit in fields(HttpLimits)})
