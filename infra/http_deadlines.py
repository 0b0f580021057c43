"""Header and body read deadlines for uvicorn's HTTP protocols (uvicorn has no header deadline of its own).

Each connection has one timer, armed for the phase the client is in:

- **headers**: from the connection's opening (a fresh connection that sends nothing is closed when it
  runs out), or, on a kept-alive connection, from the first byte of the next request, until the
  headers are complete: ``HttpLimits.header_timeout_s``;
- **body**: from the end of the headers until the request's last byte: ``HttpLimits.body_timeout_s``;
- none while the app answers; between requests uvicorn's keep-alive timeout closes an idle connection.
  Bytes that start no request (a client trickling blank lines to keep a connection open) start the
  headers deadline again.

When the timer runs out, the request being received is cut: the app (if it runs) sees the client as
gone (``http.disconnect``; its answer is dropped), a 408 in the error shape
``{"error": {"code": "request_timeout", ...}}`` is written when no other answer has started on the
connection, and the connection is closed. :func:`infra.http_server.server_config` selects these
protocols and hands them the limits; the subclasses only hook uvicorn's callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any, Literal

import h11
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from infra.http_limits import HttpLimits

__all__ = ["DeadlineH11Protocol", "DeadlineHttpToolsProtocol", "limits_of", "request_timeout_response"]

logger = logging.getLogger(__name__)

Phase = Literal["headers", "body"]
LIMITS_ATTRIBUTE = "http_limits"


def limits_of(config: Config) -> HttpLimits:
    """The limits :func:`infra.http_server.server_config` put on ``config`` (the defaults otherwise)."""
    limits = getattr(config, LIMITS_ATTRIBUTE, None)
    return limits if isinstance(limits, HttpLimits) else HttpLimits()


def request_timeout_response(trace_id: str) -> bytes:
    """The raw 408 answer (error shape, ``connection: close``)."""
    body = orjson.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": "the request was not received in time",
                "trace_id": trace_id,
            }
        }
    )
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    return head + body


class _Deadline:
    """The connection's one timer; ``received`` says whether bytes came since it was armed."""

    __slots__ = ("_handle", "_limits", "_loop", "_on_expiry", "phase", "received")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, limits: HttpLimits, on_expiry: Callable[[Phase, bool], None]
    ) -> None:
        self._loop = loop
        self._limits = limits
        self._on_expiry = on_expiry
        self._handle: asyncio.TimerHandle | None = None
        self.phase: Phase | None = None
        self.received = False

    def arm(self, phase: Phase) -> None:
        if self._handle is not None:
            self._handle.cancel()
        seconds = self._limits.header_timeout_s if phase == "headers" else self._limits.body_timeout_s
        self.phase = phase
        self.received = False
        self._handle = self._loop.call_later(seconds, self._expired)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.phase = None

    def _expired(self) -> None:
        phase, received = self.phase, self.received
        self._handle, self.phase = None, None
        if phase is not None:
            self._on_expiry(phase, received)


def _cut(transport: asyncio.Transport, cycle: Any, phase: Phase, answer: bool) -> None:
    """Cut the request being received: the app sees a disconnect, the client a 408 (if ``answer``)."""
    if transport.is_closing():
        return
    if cycle is not None and not cycle.response_complete:
        cycle.disconnected = True  # the app's receive() answers http.disconnect, its send() is dropped
        cycle.message_event.set()
    if answer:
        trace_id = uuid.uuid4().hex
        transport.write(request_timeout_response(trace_id))
        logger.info("request %s not received in time: 408, connection closed trace_id=%s", phase, trace_id)
    else:
        logger.debug("request %s not received in time: connection closed", phase)
    transport.close()


def _cut_headers(transport: asyncio.Transport, cycle: Any, received: bool) -> None:
    """The headers deadline passed: a 408 only if a request had begun and no answer is being sent."""
    _cut(transport, None, "headers", received and (cycle is None or cycle.response_complete))


class _Deadlined(asyncio.Protocol):
    """What both protocols share: the deadline made with the protocol, armed for the headers when the
    connection opens, dropped when it closes. Put before the uvicorn protocol in the bases."""

    loop: asyncio.AbstractEventLoop

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # the uvicorn protocol that follows this class in the bases takes these
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        self._deadline = _Deadline(self.loop, limits_of(config), self._expired)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._deadline.arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.disarm()
        super().connection_lost(exc)

    def _expired(self, phase: Phase, received: bool) -> None:
        raise NotImplementedError


class DeadlineHttpToolsProtocol(_Deadlined, HttpToolsProtocol):
    """uvicorn's httptools protocol with the header and body deadlines."""

    def data_received(self, data: bytes) -> None:
        self._deadline.received = True
        super().data_received(data)
        idle = self.cycle is None or self.cycle.response_complete
        if (
            self._deadline.phase is None
            and self.timeout_keep_alive_task is None
            and idle
            and not self.transport.is_closing()
        ):
            # the bytes cancelled uvicorn's keep-alive timer but left no request in progress (blank
            # lines, the rest of a body answered early): the headers deadline takes over
            self._deadline.arm("headers")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline.phase != "headers":
            self._deadline.arm("headers")
            self._deadline.received = True

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._deadline.arm("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._deadline.disarm()

    def _expired(self, phase: Phase, received: bool) -> None:
        if phase == "headers":
            _cut_headers(self.transport, self.cycle, received)
        else:
            answer = not self.cycle.response_started and not self.pipeline
            _cut(self.transport, self.cycle, phase, answer)


class DeadlineH11Protocol(_Deadlined, H11Protocol):
    """uvicorn's h11 protocol with the header and body deadlines (phases read from h11's client state)."""

    def data_received(self, data: bytes) -> None:
        self._deadline.received = True
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """Arm the deadline of the phase h11 says the client is in."""
        if self.transport.is_closing():
            self._deadline.disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._deadline.phase != "body":
                self._deadline.arm("body")
        elif state is h11.IDLE:
            if self.timeout_keep_alive_task is not None:
                self._deadline.disarm()  # idle between requests: uvicorn's keep-alive timeout
            elif self._deadline.phase != "headers":
                self._deadline.arm("headers")
                self._deadline.received = True
        else:
            self._deadline.disarm()

    def _expired(self, phase: Phase, received: bool) -> None:
        if phase == "headers":
            _cut_headers(self.transport, self.cycle, received)
        else:
            _cut(self.transport, self.cycle, phase, not self.cycle.response_started)
