"""The graceful stop of a pipeline process: SIGTERM (or SIGINT) asks, and the process is gone within
:data:`STOP_GRACE_S`.

On the signal each stage stops taking work and finishes what it holds (``docs/operations.md``,
"Rolling restarts"): the HTTP servers stop accepting and let requests in flight finish (at most
:data:`REQUESTS_DRAIN_S`), then close their producer and pool; the consumers finish their batch,
commit it and leave their group. That is normally a few seconds. If something hangs (a broker that
does not answer a flush, a stuck query), :class:`StopDeadline` ends the process with
:data:`EXIT_STOP_OVERRAN` once :data:`STOP_GRACE_S` have passed since the signal: whatever was not
committed is redone by the next owner (every stage is at-least-once into an idempotent next step),
and an orchestrator never has to reach for SIGKILL (Kubernetes waits 30 s, compose 30 s here).
The deadline runs on a thread of its own, so a blocked event loop cannot hold it back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable

__all__ = [
    "EXIT_STOP_OVERRAN",
    "REQUESTS_DRAIN_S",
    "STOP_GRACE_S",
    "STOP_SIGNALS",
    "StopDeadline",
    "handle_stop_signals",
]

logger = logging.getLogger(__name__)

STOP_GRACE_S = 20.0  # signal to exit, at most; below the 30 s an orchestrator waits before SIGKILL
REQUESTS_DRAIN_S = 10.0  # of which HTTP requests in flight may take this; the rest closes the clients
EXIT_STOP_OVERRAN = 70  # EX_SOFTWARE: the stop did not finish within STOP_GRACE_S
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopDeadline:
    """Exits the process :data:`STOP_GRACE_S` after :meth:`arm` unless it exited before (``exit``
    replaceable for tests)."""

    def __init__(self, grace_s: float = STOP_GRACE_S, exit: Callable[[int], object] = os._exit) -> None:
        self.grace_s = grace_s
        self._exit = exit
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        """Start the countdown (once: later calls keep the first deadline)."""
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.grace_s, self._overran)
        self._timer.daemon = True  # a process that stops in time exits without waiting for it
        self._timer.start()

    def cancel(self) -> None:
        """Stop the countdown (the stop finished)."""
        if self._timer is not None:
            self._timer.cancel()

    def _overran(self) -> None:
        logger.error(
            "the stop did not finish within %.0f s: exiting now (status %d)", self.grace_s, EXIT_STOP_OVERRAN
        )
        self._exit(EXIT_STOP_OVERRAN)


def handle_stop_signals(stop: asyncio.Event, deadline: StopDeadline | None = None) -> StopDeadline:
    """On the running loop, SIGTERM and SIGINT set ``stop`` and arm ``deadline`` (a new one by default)."""
    deadline = deadline or StopDeadline()
    loop = asyncio.get_running_loop()

    def requested(signum: signal.Signals) -> None:
        if not stop.is_set():
            logger.info("%s received: stopping (at most %.0f s)", signum.name, deadline.grace_s)
        stop.set()
        deadline.arm()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, requested, signum)
    return deadline
