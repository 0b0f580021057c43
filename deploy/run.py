"""``python -m deploy run``: the whole pipeline on local defaults, with data flowing on screen.

It starts the local infrastructure (idempotent), then every pipeline stage that exists as a
process (``python -m <stage>``), each with its output in ``run/logs/<stage>.log``, and shows a
live table of the records arriving on every registry topic. It says plainly which stages it
started and which do not exist yet. Ctrl-C (or ``--seconds``) stops the stages it started; the
infrastructure keeps running (``make down`` stops it). The stages run on the public development
secrets, so they get ``PIPELINE_ENV=dev`` unless the caller's environment sets it (``stage_env``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from deploy.demo import CONNECTED, DemoError, drive
from deploy.paths import REPO_ROOT, run_dir
from infra.kafka import make_consumer
from infra.settings import KafkaSettings
from ingest.settings import IngestSettings
from schemas.topics import TOPICS
from simulator.settings import SimulatorSettings

__all__ = ["DEV_DEFAULTS", "STAGES", "Stage", "run_pipeline", "stage_env", "stop_processes"]

DEV_DEFAULTS = (("PIPELINE_ENV", "dev"),)
"""Defaults of every stage's environment: a local run uses the public development secrets."""


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
        ("ingest.app", "projections.api"),
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


@dataclass
class _Flow:
    counts: Counter[str] = field(default_factory=Counter)
    last: dict[str, str] = field(default_factory=dict)
    activity: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    connections: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        """Show a line of the demo's activity; connections are also kept for the closing summary."""
        self.activity.append(line)
        if line.startswith(CONNECTED):
            self.connections.append(line)

    def view(self, started: list[Stage], elapsed: float) -> Group:
        lines = "\n".join(self.activity) or "waiting for the stages to answer..."
        return Group(self.table(started, elapsed), Panel(lines, title="simulated members"))

    def table(self, started: list[Stage], elapsed: float) -> Table:
        table = Table(title=f"records arriving since start ({elapsed:.0f} s; Ctrl-C stops)")
        table.add_column("topic")
        table.add_column("records", justify="right")
        table.add_column("last key")
        for spec in TOPICS:
            table.add_row(spec.name, str(self.counts[spec.name]), self.last.get(spec.name, ""))
        table.caption = "stages running: " + (", ".join(s.name for s in started) or "none")
        return table


async def _watch(settings: KafkaSettings, flow: _Flow, stop: asyncio.Event) -> None:
    consumer = make_consumer(
        settings, "run-watch", None, *(spec.name for spec in TOPICS), auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=250)
            for tp, records in batch.items():
                flow.counts[tp.topic] += len(records)
                if records and records[-1].key is not None:
                    # keys name the user and resource, never health data
                    flow.last[tp.topic] = records[-1].key.decode(errors="replace")[:60]
    finally:
        await consumer.stop()


async def stop_processes(processes: Collection[asyncio.subprocess.Process]) -> None:
    """SIGTERM every stage still running, then SIGKILL what has not exited after 15 s."""
    for process in processes:
        if process.returncode is None:
            process.terminate()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


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


async def _start(stage: Stage, logs: Path) -> asyncio.subprocess.Process:
    log = (logs / f"{stage.name}.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *stage.argv,
            cwd=REPO_ROOT,
            env=stage_env(stage, os.environ),
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )
    finally:
        log.close()


async def run_pipeline(console: Console, seconds: float | None) -> int:
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    processes: dict[Stage, asyncio.subprocess.Process] = {}
    try:
        for stage in present:
            processes[stage] = await _start(stage, logs)
        return await _show(console, present, processes, stop, seconds)
    finally:
        await stop_processes(list(processes.values()))


async def _show(
    console: Console,
    present: list[Stage],
    processes: dict[Stage, asyncio.subprocess.Process],
    stop: asyncio.Event,
    seconds: float | None,
) -> int:
    settings = KafkaSettings()
    flow = _Flow()
    watcher = asyncio.create_task(_watch(settings, flow, stop))
    names = {stage.name for stage in present}
    driver = (
        asyncio.create_task(drive(_edge_url(), _simulator_url(), stop, flow.say))
        if {"simulator", "edge"} <= names
        else None
    )
    started = time.monotonic()
    exit_code = 0
    try:
        with Live(flow.view(present, 0), console=console, refresh_per_second=4) as live:
            while not stop.is_set():
                if seconds is not None and time.monotonic() - started >= seconds:
                    break
                dead = [s for s, p in processes.items() if p.returncode is not None]
                if dead:
                    console.print(f"[red]stage exited:[/] {', '.join(s.name for s in dead)} (see run/logs/)")
                    exit_code = 1
                    break
                if driver is not None and driver.done() and driver.exception() is not None:
                    console.print(f"[red]the demo traffic stopped:[/] {driver.exception()}")
                    exit_code = 1
                    break
                live.update(flow.view(present, time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
    finally:
        stop.set()
        await watcher
        if driver is not None:
            with contextlib.suppress(DemoError, httpx.HTTPError):
                await driver
    for line in [*flow.connections, *(line for line in flow.activity if line not in flow.connections)]:
        console.print(line)
    total = sum(flow.counts.values())
    console.print(f"stopping {len(processes)} stage(s); {total} record(s) seen on the topics while running")
    for spec in TOPICS:
        if flow.counts[spec.name]:
            console.print(f"  {spec.name}: {flow.counts[spec.name]}")
    return exit_code
