"""``python -m deploy run``: the whole pipeline on local defaults, with data flowing on screen.

It starts the local infrastructure (idempotent), then every pipeline stage that exists as a
process (``python -m <stage>``), each with its output in ``run/logs/<stage>.log``, and shows a
live table of the records arriving on every registry topic. It says plainly which stages it
started and which do not exist yet. Ctrl-C (or ``--seconds``) stops the stages it started; the
infrastructure keeps running (``make down`` stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from deploy.demo import DemoError, drive
from deploy.paths import REPO_ROOT, run_dir
from infra.kafka import make_consumer
from infra.settings import KafkaSettings
from ingest.settings import IngestSettings
from schemas.topics import TOPICS
from simulator.settings import SimulatorSettings

__all__ = ["STAGES", "Stage", "run_pipeline"]


@dataclass(frozen=True)
class Stage:
    """One pipeline process, started as ``python -m <module>``."""

    module: str
    role: str

    def exists(self) -> bool:
        try:
            return importlib.util.find_spec(f"{self.module}.__main__") is not None
        except ModuleNotFoundError:
            return False


STAGES = (
    Stage("simulator", "WHOOP v2 simulator (OAuth, data API, signed webhooks) on 127.0.0.1:8100"),
    Stage("ingest", "ingest edge (webhooks, OAuth connect) on 127.0.0.1:8000"),
    Stage("processors", "fetcher and normalizer (WHOOP documents → wear.records.v1)"),
    Stage("projections", "projections and query API (read models in PostgreSQL)"),
)


@dataclass
class _Flow:
    counts: Counter[str] = field(default_factory=Counter)
    last: dict[str, str] = field(default_factory=dict)
    activity: deque[str] = field(default_factory=lambda: deque(maxlen=8))

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
        table.caption = "stages running: " + (", ".join(s.module for s in started) or "none")
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


def _edge_url() -> str:
    settings = IngestSettings()
    return f"http://{settings.host}:{settings.port}"


def _simulator_url() -> str:
    settings = SimulatorSettings()
    return f"http://{settings.host}:{settings.port}"


async def _start(stage: Stage, logs: Path) -> asyncio.subprocess.Process:
    log = (logs / f"{stage.module}.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            stage.module,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )
    finally:
        log.close()


async def run_pipeline(console: Console, seconds: float | None) -> int:
    """Start the stages, show the flow until Ctrl-C or ``seconds``; returns an exit code."""
    settings = KafkaSettings()
    logs = run_dir() / "logs"
    logs.mkdir(exist_ok=True)
    present = [stage for stage in STAGES if stage.exists()]
    for stage in STAGES:
        if stage in present:
            console.print(
                f"[green]starting[/] {stage.module}: {stage.role} (log: run/logs/{stage.module}.log)"
            )
        else:
            console.print(f"[yellow]not built yet[/] {stage.module}: {stage.role}")
    processes = {stage: await _start(stage, logs) for stage in present}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    flow = _Flow()
    watcher = asyncio.create_task(_watch(settings, flow, stop))
    modules = {stage.module for stage in present}
    driver = (
        asyncio.create_task(drive(_edge_url(), _simulator_url(), stop, flow.activity.append))
        if {"simulator", "ingest"} <= modules
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
                    console.print(
                        f"[red]stage exited:[/] {', '.join(s.module for s in dead)} (see run/logs/)"
                    )
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
        for process in processes.values():
            if process.returncode is None:
                process.terminate()
        for process in processes.values():
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
    for line in flow.activity:
        console.print(line)
    total = sum(flow.counts.values())
    console.print(f"stopped {len(processes)} stage(s); {total} record(s) seen on the topics while running")
    for spec in TOPICS:
        if flow.counts[spec.name]:
            console.print(f"  {spec.name}: {flow.counts[spec.name]}")
    return exit_code
