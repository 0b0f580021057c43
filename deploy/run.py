"""``python -m deploy run``: the whole pipeline on local defaults, with data flowing on screen.

It starts the local infrastructure (idempotent), then every pipeline stage that exists as a
process (``python -m <stage>``), each with its output in ``run/logs/<stage>.log``, and shows a
live view (``deploy.live_view``): the stages, the records arriving on every registry topic, what
the simulated members do and how many records each can read, and a ready ``curl`` line to try the
query API. It says plainly which stages it started and which do not exist yet. A stage that dies
is restarted with backoff (``deploy.supervisor``); one that keeps dying stops the run, with the
last lines of its log. Ctrl-C (or ``--seconds``) stops the stages it started; the
infrastructure keeps running (``make down`` stops it). The launcher's own warnings go to
``run/logs/run.log``, not over the view. The stages run on the public development
secrets, so they get ``PIPELINE_ENV=dev`` unless the caller's environment sets it (``stage_env``);
they log in the readable console format (``LOG_FORMAT=console``, ``infra/logs.py``) unless it sets
``LOG_FORMAT=json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.live import Live

from deploy.demo import DemoError, drive
from deploy.live_view import Board, render, summary_lines
from deploy.paths import REPO_ROOT, run_dir
from deploy.supervisor import RestartPolicy, StageState, Supervisor, stop_processes
from infra.kafka import make_consumer
from infra.logs import configure_logging
from infra.settings import KafkaSettings
from ingest.settings import IngestSettings
from schemas.topics import TOPICS
from simulator.settings import SimulatorSettings

__all__ = ["DEV_DEFAULTS", "STAGES", "Stage", "run_defaults", "run_pipeline", "stage_env", "stop_processes"]

DEV_DEFAULTS = (("PIPELINE_ENV", "dev"), ("LOG_FORMAT", "console"))
"""Defaults of every stage's environment: a local run uses the public development secrets, and its
stages log in the readable console format (their files under run/logs are read by people)."""


@dataclass(frozen=True)
class Stage:
    """One pipeline process, started as ``python -m <argv...>`` once its packages exist."""

    name: str
    argv: tuple[str, ...]
    role: str
    needs: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def exists(self) -> bool:
        try:
            return all(importlib.util.find_spec(module) is not None for module in self.needs)
        except ModuleNotFoundError:
            return False


STAGES = (
    Stage(
        "simulator",
        ("simulator",),
        "WHOOP v2 simulator (OAuth, data API, signed webhooks) on 127.0.0.1:8100",
        ("simulator.__main__",),
        # history up to today, so the connection backfill (a horizon back from now) finds data
        (("SIMULATOR_HISTORY_END", "today"),),
    ),
    Stage(
        "edge",
        ("deploy", "edge"),
        "HTTP edge on 127.0.0.1:8000: ingest (webhooks, OAuth connect, pulls) + query API",
        ("ingest.app", "projections.query.api"),
    ),
    Stage(
        "processors",
        ("processors",),
        "fetcher and normalizer (webhooks → WHOOP documents → wear.records.v1)",
        ("processors.__main__",),
    ),
    Stage(
        "projections",
        ("projections",),
        "projection workers (wear.records.v1 → read models in PostgreSQL, exactly once)",
        ("projections.__main__",),
    ),
)


async def _watch(settings: KafkaSettings, board: Board, stop: asyncio.Event) -> None:
    consumer = make_consumer(
        settings, "run-watch", None, *(spec.name for spec in TOPICS), auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=250)
            for tp, records in batch.items():
                board.topic_counts[tp.topic] += len(records)
                if records and records[-1].key is not None:
                    # keys name the user and resource, never health data
                    board.last_key[tp.topic] = records[-1].key.decode(errors="replace")[:60]
    finally:
        await consumer.stop()


def _port_taken(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def _edge_url() -> str:
    settings = IngestSettings()
    return f"http://{settings.host}:{settings.port}"


def _simulator_url() -> str:
    settings = SimulatorSettings()
    return f"http://{settings.host}:{settings.port}"


def stage_env(stage: Stage, environ: Mapping[str, str]) -> dict[str, str]:
    """A stage's environment: ``DEV_DEFAULTS``, the stage's own defaults, then ``environ`` (it wins)."""
    return {**dict(DEV_DEFAULTS), **dict(stage.env), **environ}


def run_defaults(seed: int) -> dict[str, str]:
    """Defaults of one run, below the caller's environment: a new simulated WHOOP world each run.

    The simulator keeps its world in memory, and a seed draws the same members, record ids and
    webhook ids again; on a PostgreSQL that remembers the last run, the pipeline would skip those
    webhooks as duplicates and nothing would move. (A restarted simulator keeps the run's seed; its
    world starts again, without the members' grants.)
    """
    return {"SIMULATOR_SEED": str(seed)}


async def _start(stage: Stage, logs: Path, defaults: Mapping[str, str]) -> asyncio.subprocess.Process:
    log = (logs / f"{stage.name}.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *stage.argv,
            cwd=REPO_ROOT,
            env=stage_env(stage, {**defaults, **os.environ}),
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
            # its own session: Ctrl-C reaches the launcher only, which stops each stage with SIGTERM
            start_new_session=True,
        )
    finally:
        log.close()


async def run_pipeline(console: Console, seconds: float | None, policy: RestartPolicy | None = None) -> int:
    """Start the stages, show the flow until Ctrl-C or ``seconds``; returns an exit code."""
    logs = run_dir() / "logs"
    logs.mkdir(exist_ok=True)
    present = [stage for stage in STAGES if stage.exists()]
    busy = [url for url in (_edge_url(), _simulator_url()) if _port_taken(url)]
    if busy:
        console.print(f"[red]already in use:[/] {', '.join(busy)} (another pipeline running? stop it first)")
        return 1
    for stage in STAGES:
        if stage in present:
            console.print(f"[green]starting[/] {stage.name}: {stage.role} (log: run/logs/{stage.name}.log)")
        else:
            console.print(f"[yellow]not built yet[/] {stage.name}: {stage.role}")
    _log_to(logs / "run.log")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    board = Board(_edge_url())
    defaults = run_defaults(secrets.randbelow(2**31))
    supervisor = Supervisor(
        {stage.name: functools.partial(_start, stage, logs, defaults) for stage in present},
        {stage.name: logs / f"{stage.name}.log" for stage in present},
        policy or RestartPolicy(),
        board.note,
    )
    try:
        await supervisor.start()
        return await _show(console, supervisor, board, stop, seconds)
    finally:
        await supervisor.stop()


def _log_to(path: Path) -> None:
    """The launcher's own log records (a Kafka client's warnings) go to a file, not over the live view."""
    configure_logging("run", "console", level=logging.WARNING, handler=logging.FileHandler(path))


async def _show(
    console: Console, supervisor: Supervisor, board: Board, stop: asyncio.Event, seconds: float | None
) -> int:
    watcher = asyncio.create_task(_watch(KafkaSettings(), board, stop))
    driver = (
        asyncio.create_task(drive(_edge_url(), _simulator_url(), stop, board))
        if {"simulator", "edge"} <= set(supervisor.states)
        else None
    )
    states = supervisor.states.values()
    started = time.monotonic()
    exit_code = 0
    try:
        with Live(render(board, states, 0), console=console, refresh_per_second=4) as live:
            while not stop.is_set():
                if seconds is not None and time.monotonic() - started >= seconds:
                    break
                if supervisor.failed is not None:
                    exit_code = 1
                    break
                if driver is not None and driver.done() and driver.exception() is not None:
                    board.note(f"the demo traffic stopped: {driver.exception()}")
                    exit_code = 1
                    break
                live.update(render(board, states, time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
            live.update(render(board, states, time.monotonic() - started))
    finally:
        stop.set()
        await watcher
        if driver is not None:
            driver.cancel()  # it may be waiting minutes for a stage that is not coming back
            with contextlib.suppress(DemoError, httpx.HTTPError, asyncio.CancelledError):
                await driver
    _summarize(console, board, supervisor)
    return exit_code


def _summarize(console: Console, board: Board, supervisor: Supervisor) -> None:
    if not console.is_terminal:
        console.line()  # a file or pipe gets the view's last frame without its closing newline
    for line in summary_lines(board):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if supervisor.failed is not None:
        _print_failure(console, supervisor.failed)
    total = sum(board.topic_counts.values())
    stages = len(supervisor.states)
    console.print(f"stopping {stages} stage(s); {total} record(s) seen on the topics while running")
    for spec in TOPICS:
        if board.topic_counts[spec.name]:
            console.print(f"  {spec.name}: {board.topic_counts[spec.name]}")


def _print_failure(console: Console, state: StageState) -> None:
    console.print(
        f"[red]{state.name} keeps dying[/] ({len(state.exits)} exits, the last {state.last_exit}); "
        f"the run stops. The last lines of run/logs/{state.name}.log:"
    )
    for line in state.log_tail:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
