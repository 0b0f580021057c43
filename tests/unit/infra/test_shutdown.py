"""A stop signal ends every kind of pipeline process within ``STOP_GRACE_S``, with status 0 when the stop
finished (``infra/shutdown.py``, ``infra.http_server.serve``); real processes, real signals."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import threading
import time

import httpx
from starlette.applications import Starlette

from deploy.paths import REPO_ROOT
from infra.http_limits import HttpLimits
from infra.http_server import server_config
from infra.shutdown import EXIT_STOP_OVERRAN, REQUESTS_DRAIN_S, StopDeadline
from tests.support.server import free_port


def _later(seconds: float) -> threading.Event:
    """An event set ``seconds`` from now: by then, an earlier deadline has fired or never will."""
    later = threading.Event()
    StopDeadline(seconds, exit=lambda _: later.set()).arm()
    return later


def test_the_deadline_exits_once_with_its_status_when_armed() -> None:
    exits: list[int] = []
    deadline = StopDeadline(0.05, exit=exits.append)
    deadline.arm()
    deadline.arm()  # a second signal keeps the first deadline
    assert _later(0.3).wait(5)
    assert exits == [EXIT_STOP_OVERRAN]


def test_a_cancelled_deadline_does_not_exit() -> None:
    exits: list[int] = []
    deadline = StopDeadline(0.05, exit=exits.append)
    deadline.arm()
    deadline.cancel()
    assert _later(0.3).wait(5)
    assert exits == []


# a worker loop as in processors/projections: ``hang`` ignores the stop, as a stuck flush would
_WORKER = """
import asyncio, sys
from infra.shutdown import StopDeadline, handle_stop_signals

async def main(hang):
    stop = asyncio.Event()
    handle_stop_signals(stop, StopDeadline(1.0))
    print("ready", flush=True)
    await stop.wait()
    if hang:
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1] == "hang"))
"""


async def _started(*argv: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
    return process


async def _stopped(process: asyncio.subprocess.Process) -> tuple[int, float, str]:
    """SIGTERM ``process``; its status, the seconds it took to exit, its stderr."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, time.monotonic() - began, err.decode(errors="replace")


async def test_a_worker_that_stops_exits_0_at_once() -> None:
    status, took, err = await _stopped(await _started("-c", _WORKER, "stop"))
    assert (status, took < 1.0) == (0, True), err


async def test_a_worker_whose_stop_hangs_is_ended_at_the_deadline() -> None:
    status, took, err = await _stopped(await _started("-c", _WORKER, "hang"))
    assert status == EXIT_STOP_OVERRAN, err
    assert 1.0 <= took < 5.0, took
    assert "the stop did not finish within 1 s" in err


_HTTP = textwrap.dedent(
    """
    import contextlib, sys
    from starlette.applications import Starlette
    from infra.http_limits import HttpLimits
    from infra.http_server import serve, server_config

    @contextlib.asynccontextmanager
    async def lifespan(app):
        print("ready", flush=True)
        yield
        print("closed", file=sys.stderr, flush=True)

    app = Starlette(lifespan=lifespan)
    config = server_config(app, host="127.0.0.1", port=int(sys.argv[1]), limits=HttpLimits(), lifespan="on")
    sys.exit(serve(config))
    """
)


async def test_an_http_server_stopped_by_sigterm_exits_0_and_drains_first() -> None:
    """uvicorn alone would re-raise SIGTERM after its clean stop: the process would die by the signal."""
    port = free_port()
    process = await _started("-c", _HTTP, str(port))
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 404  # served
    status, took, err = await _stopped(process)
    assert status == 0, err
    assert "closed" in err  # the lifespan's shutdown ran (where the producer and the pool close)
    assert took < 5.0, took


def test_every_http_server_gives_requests_in_flight_a_bounded_drain() -> None:
    config = server_config(Starlette(), host="127.0.0.1", port=1, limits=HttpLimits())
    assert config.timeout_graceful_shutdown == REQUESTS_DRAIN_S
