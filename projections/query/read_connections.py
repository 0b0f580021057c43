"""The query API's PostgreSQL connections: a small set lent first come, first served.

Why not ``asyncpg.Pool``: its release runs in a task of its own and resets the session, ~0.12 ms of
Python per query (twice the client work of the query itself, measured), and a released connection
can be taken by a newcomer before the waiter that was woken for it runs; that waiter then queues again
at the back, so under load a few requests wait many times longer than the rest (p99 ≫ p50). Here a
released connection goes straight to the oldest waiter, and nothing is reset: the query API only
reads, and leaves no session state behind. A request that already had a connection (its token
lookup, say) waits ahead of requests that had none: a request queues at most once, so a cache miss
does not double its wait. The mark is a context variable that :func:`begin_request` clears when a
request starts (a server may serve several requests in one task).

A connection that failed (a timeout, a lost socket, PostgreSQL ending or cancelling the session: any
exception but an ordinary error PostgreSQL reported) is closed instead of lent again; a closed one is
replaced on demand, so the API recovers by itself when PostgreSQL comes back.
:class:`PoolConnections` lends from an existing ``asyncpg.Pool`` instead (an app that shares its
pool, tests).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from types import TracebackType
from typing import Protocol

import asyncpg

__all__ = ["ConnectionSource", "FairConnections", "PoolConnections", "as_source", "begin_request"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 5.0
_SESSION_ENDING = (asyncpg.exceptions.OperatorInterventionError, asyncpg.PostgresConnectionError)
_SERVED: ContextVar[bool] = ContextVar("projections_read_connection_served", default=False)


def begin_request() -> None:
    """A new request starts in this context: its first statement queues behind those of requests
    already under way."""
    _SERVED.set(False)


class ConnectionSource(Protocol):
    """Where the query API's reads get a connection for one statement."""

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...


class PoolConnections:
    """Connections of an existing ``asyncpg.Pool`` (which stays its owner's to close)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return self.pool.acquire()  # type: ignore[return-value] # yields a proxy of a Connection


def as_source(connections: asyncpg.Pool | ConnectionSource) -> ConnectionSource:
    """``connections`` as a source: a pool is wrapped, a source is returned as is."""
    if isinstance(connections, asyncpg.Pool):
        return PoolConnections(connections)
    return connections


class _Lease:
    """``async with connections.connection() as connection``: one connection, given back on exit."""

    __slots__ = ("_connection", "_owner")

    def __init__(self, owner: FairConnections) -> None:
        self._owner = owner
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection = await self._owner.acquire()
        return self._connection

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            broken = error is not None and (
                not isinstance(error, asyncpg.PostgresError) or isinstance(error, _SESSION_ENDING)
            )
            self._owner.release(connection, broken=broken)


class FairConnections:
    """At most ``size`` connections made by ``connect``, lent in arrival order.

    A slot is one connection that exists, is being made, or was promised to a waiter that will make
    it; ``_slots`` counts them and never exceeds ``size``.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._connect = connect
        self._size = size
        self._slots = 0
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._urgent: deque[asyncio.Future[asyncpg.Connection | None]] = deque()  # served before
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return _Lease(self)

    async def acquire(self) -> asyncpg.Connection:
        """A connection: an idle one, a new one while there is room, else the next one released."""
        if self._closed:
            raise asyncpg.InterfaceError("the query API's connections are closed")
        served = _SERVED.get()
        if not served:
            _SERVED.set(True)
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._free_slot()
        if self._slots < self._size and not self._waiters and not self._urgent:
            self._slots += 1
            return await self._make()
        waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
        (self._urgent if served else self._waiters).append(waiter)
        try:
            given = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as the caller was cancelled
                promised = waiter.result()
                if promised is None:
                    self._free_slot()
                else:
                    self.release(promised)
            raise
        if given is None:  # a slot was freed: make its connection
            return await self._make()
        return given

    async def _make(self) -> asyncpg.Connection:
        """A new connection in a slot already counted; the slot is freed when connecting fails."""
        try:
            return await self._connect()
        except BaseException:
            self._free_slot()
            raise

    def release(self, connection: asyncpg.Connection, *, broken: bool = False) -> None:
        """Give ``connection`` back: to the oldest waiter, else to the idle ones; closed when broken."""
        if broken or self._closed or connection.is_closed():
            if not connection.is_closed():
                connection.terminate()
            self._free_slot()
            return
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(connection)
        else:
            self._idle.append(connection)

    def _free_slot(self) -> None:
        """A slot is free: promise it to the next waiter (which connects), else forget it."""
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(None)
        else:
            self._slots -= 1

    def _next_waiter(self) -> asyncio.Future[asyncpg.Connection | None] | None:
        """The oldest waiter still waiting, those that were served before first; None if none."""
        for queue in (self._urgent, self._waiters):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    return waiter
        return None

    async def close(self) -> None:
        """Close the idle connections (lent ones close when given back); waiters get InterfaceError."""
        self._closed = True
        while (waiter := self._next_waiter()) is not None:
            waiter.set_exception(asyncpg.InterfaceError("the query API's connections are closed"))
        idle, self._idle = self._idle, []
        for connection in idle:
            self._slots -= 1
            try:
                await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()
