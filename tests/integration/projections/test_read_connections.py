"""The query API's connections on real PostgreSQL: first come first served, bounded, self-healing."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
import pytest

from projections.query.read_connections import FairConnections, begin_request

T = TypeVar("T")


def _connections(database_url: str, size: int) -> FairConnections:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(database_url)

    return FairConnections(connect, size)


async def _started(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task in a fresh context (as a request's task is), run until it waits."""
    task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
    for _ in range(5):
        await asyncio.sleep(0)  # let it reach its wait: yields only, no wall-clock sleep
    return task


async def test_waiters_are_served_in_arrival_order_and_a_newcomer_does_not_jump_the_queue(
    database_url: str,
) -> None:
    connections = _connections(database_url, 2)
    held = [await connections.acquire(), await connections.acquire()]
    order: list[int] = []

    async def wait(number: int) -> None:
        async with connections.connection() as connection:
            order.append(number)
            assert await connection.fetchval("SELECT 1") == 1

    waiters = [await _started(wait(number)) for number in range(4)]
    connections.release(held.pop())
    late = await _started(wait(99))  # arrives while waiter 0 is being handed the connection
    connections.release(held.pop())
    await asyncio.gather(*waiters, late)
    assert order == [0, 1, 2, 3, 99]
    await connections.close()


async def test_a_request_that_already_had_a_connection_waits_ahead_of_new_ones(database_url: str) -> None:
    connections = _connections(database_url, 1)
    held = await connections.acquire()
    order: list[str] = []
    second_turn = asyncio.Event()

    async def two_statements() -> None:
        async with connections.connection() as connection:  # its token lookup, say
            await connection.fetchval("SELECT 1")
        order.append("first statement")
        await second_turn.wait()
        async with connections.connection() as connection:
            order.append("second statement")

    async def newcomer(name: str) -> None:
        async with connections.connection():
            order.append(name)

    early = await _started(two_statements())
    connections.release(held)
    for _ in range(10):
        await asyncio.sleep(0)
    held = await connections.acquire()
    others = [await _started(newcomer(f"new {number}")) for number in range(2)]
    second_turn.set()
    await _started(asyncio.sleep(0))
    connections.release(held)
    await asyncio.gather(early, *others)
    assert order == ["first statement", "second statement", "new 0", "new 1"]
    await connections.close()


async def test_a_task_that_serves_several_requests_starts_each_one_as_new(database_url: str) -> None:
    connections = _connections(database_url, 1)
    order: list[str] = []
    next_request = asyncio.Event()

    async def keep_alive_task() -> None:  # one task serving two requests in turn
        begin_request()
        async with connections.connection():
            order.append("request 1")
        await next_request.wait()
        begin_request()
        async with connections.connection():
            order.append("request 2")

    async def other() -> None:
        async with connections.connection():
            order.append("other request")

    serving = await _started(keep_alive_task())
    held = await connections.acquire()
    waiting = await _started(other())
    next_request.set()
    await _started(asyncio.sleep(0))
    connections.release(held)
    await asyncio.gather(serving, waiting)
    assert order == ["request 1", "other request", "request 2"]
    await connections.close()


async def test_never_more_connections_than_its_size(database_url: str) -> None:
    connections = _connections(database_url, 3)

    async def backend() -> int:
        async with connections.connection() as connection:
            pid: int = await connection.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.01)")
            return pid

    pids = await asyncio.gather(*(backend() for _ in range(30)))
    assert len(set(pids)) == 3
    await connections.close()


async def test_a_connection_that_failed_is_replaced(database_url: str) -> None:
    connections = _connections(database_url, 1)
    admin = await asyncpg.connect(database_url)
    try:
        failures = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
        with pytest.raises(failures):  # which one depends on when the client sees the backend go
            async with connections.connection() as connection:
                first = await connection.fetchval("SELECT pg_backend_pid()")
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
                await connection.fetchval("SELECT 1")  # its backend is gone: this fails
        async with connections.connection() as connection:
            assert await connection.fetchval("SELECT pg_backend_pid()") != first
    finally:
        await admin.close()
        await connections.close()


async def test_a_waiter_cancelled_while_waiting_costs_no_connection(database_url: str) -> None:
    connections = _connections(database_url, 1)
    held = await connections.acquire()
    waiter = await _started(connections.acquire())
    waiter.cancel()
    connections.release(held)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with connections.connection() as connection:
        assert connection is held  # given back to the idle ones, not lost with the cancelled waiter
    await connections.close()


async def test_closed_connections_refuse_new_work_and_fail_their_waiters(database_url: str) -> None:
    connections = _connections(database_url, 1)
    held = await connections.acquire()
    waiter = await _started(connections.acquire())
    await connections.close()
    with pytest.raises(asyncpg.InterfaceError):
        await waiter
    with pytest.raises(asyncpg.InterfaceError):
        await connections.acquire()
    connections.release(held)
    assert held.is_closed()
