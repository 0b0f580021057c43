"""Keeps the stages of ``make run`` alive: a stage that dies is restarted with backoff.

``RestartPolicy.delay`` is the decision (pure): how long to wait before the next start, or None
when the stage keeps dying (``give_up_after`` exits inside ``window_s``) and the run should stop.
``Supervisor`` carries it out: one task per stage starts its process, waits for it to exit and,
unless the run is stopping, restarts it after the policy's delay. Each stage's ``StageState`` is
what the live view shows; ``say`` receives one plain line per exit, restart and give-up. When a
stage gives up, ``failed`` holds its state, with the last lines of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infra.shutdown import STOP_GRACE_S

__all__ = [
    "RestartPolicy",
    "StageState",
    "Supervisor",
    "describe_exit",
    "stop_processes",
    "tail_lines",
]

Status = Literal["starting", "running", "restarting", "gave up", "stopped"]
Starter = Callable[[], Awaitable[asyncio.subprocess.Process]]


@dataclass(frozen=True)
class RestartPolicy:
    """Restart after ``first_delay_s``, doubling (``factor``) up to ``max_delay_s`` while the exits
    come close together; give up at the ``give_up_after``-th exit inside ``window_s``."""

    first_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 30.0
    give_up_after: int = 5
    window_s: float = 120.0

    def delay(self, exits: Sequence[float], now: float) -> float | None:
        """Seconds to wait before restarting, given the stage's exit times (monotonic), or None to give up."""
        recent = sum(1 for at in exits if now - at <= self.window_s)
        if recent >= self.give_up_after:
            return None
        return min(self.max_delay_s, self.first_delay_s * self.factor ** max(recent - 1, 0))


def describe_exit(returncode: int) -> str:
    """A process's exit in plain words: ``exited with code 1``, ``killed by SIGKILL``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def tail_lines(path: Path, count: int = 15, max_bytes: int = 16_384) -> list[str]:
    """The last ``count`` lines of a log file (reading at most its last ``max_bytes``); [] when absent."""
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - max_bytes))
            text = log.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-count:]


@dataclass
class StageState:
    """What the live view shows of one stage."""

    name: str
    status: Status = "starting"
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    retry_at: float | None = None  # monotonic time of the next start while restarting
    exits: list[float] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)

    def describe(self, now: float) -> str:
        """The stage's state in plain words."""
        restarted = f", restarted {self.restarts}x (last: {self.last_exit})" if self.restarts else ""
        if self.status == "running":
            return f"running (pid {self.pid}){restarted}"
        if self.status == "restarting":
            wait = max(0.0, (self.retry_at or now) - now)
            return f"{self.last_exit}; restarting in {wait:.0f} s (restart {self.restarts + 1})"
        if self.status == "gave up":
            return f"gave up after {len(self.exits)} exits (last: {self.last_exit})"
        return self.status


class Supervisor:
    """Starts each stage through its starter and keeps it running under ``policy``."""

    def __init__(
        self,
        starters: Mapping[str, Starter],
        logs: Mapping[str, Path],
        policy: RestartPolicy,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._starters = starters
        self._logs = logs
        self._policy = policy
        self._say = say
        self._clock = clock
        self._stopping = asyncio.Event()
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.states = {name: StageState(name) for name in starters}
        self.failed: StageState | None = None
        self.gave_up = asyncio.Event()

    async def start(self) -> None:
        """Start every stage, in order, and keep watching them."""
        for name in self._starters:
            await self._launch(name)
        self._tasks = [asyncio.create_task(self._keep(name)) for name in self._starters]

    async def stop(self) -> None:
        """Stop restarting, then stop every stage still running."""
        self._stopping.set()
        await stop_processes(list(self._processes.values()))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for state in self.states.values():
            if state.status != "gave up":
                state.status = "stopped"

    async def _launch(self, name: str) -> None:
        process = await self._starters[name]()
        self._processes[name] = process
        state = self.states[name]
        state.status, state.pid, state.retry_at = "running", process.pid, None

    async def _keep(self, name: str) -> None:
        state = self.states[name]
        while True:
            returncode = await self._processes[name].wait()
            if self._stopping.is_set():
                return
            now = self._clock()
            state.exits.append(now)
            state.last_exit = describe_exit(returncode)
            delay = self._policy.delay(state.exits, now)
            if delay is None:
                self._give_up(state)
                return
            state.status, state.retry_at = "restarting", now + delay
            self._say(f"{name} {state.last_exit}; restarting it in {delay:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            state.restarts += 1
            try:
                await self._launch(name)
            except OSError as exc:  # e.g. the interpreter or the checkout went away
                state.last_exit = f"could not start ({exc.strerror or exc})"
                self._give_up(state)
                return
            self._say(f"{name} restarted (pid {state.pid}, restart {state.restarts})")

    def _give_up(self, state: StageState) -> None:
        state.status = "gave up"
        state.log_tail = tail_lines(self._logs[state.name])
        self._say(f"{state.name} keeps dying ({state.last_exit}); not restarting it again")
        self.failed = state
        self.gave_up.set()


async def stop_processes(processes: Collection[asyncio.subprocess.Process]) -> None:
    """SIGTERM every stage still running, then SIGKILL what has not exited a little after its own
    bound (``infra.shutdown.STOP_GRACE_S``, after which a stage ends itself)."""
    for process in processes:
        if process.returncode is None:
            process.terminate()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S + 5)
        except TimeoutError:
            process.kill()
            await process.wait()
