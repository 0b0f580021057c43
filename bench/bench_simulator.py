"""Benchmark of the WHOOP simulator's request rate, against a bare Starlette endpoint on the same machine.

Method: ``python -m simulator`` runs as a subprocess on a free loopback port (quota enforcement and
webhooks off, 5 members x 30 days); ``wrk`` (1 thread, 32 connections, a Lua script that sets the
Bearer header) loads two data routes for a few runs each: a collection page
(``GET /developer/v2/cycle?limit=10``, 10 documents) and a by-id read (``GET /developer/v2/cycle/{id}``).
The baseline is a one-route Starlette app answering a fixed JSON body under the same uvicorn
configuration. Medians of the runs and the ratio to the baseline go into the ``## WHOOP simulator``
section of ``BENCHMARKS.md`` (only that section is rewritten).

Run: ``.venv/bin/python bench/bench_simulator.py`` (needs ``wrk``: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import wait_until_serving  # noqa: E402

BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## WHOOP simulator"
TARGET = 2000.0
LUA = 'wrk.headers["Authorization"] = "Bearer {token}"\n'


def _free_port() -> int:
    sys.path.insert(0, str(ROOT))
    from tests.support.server import free_port

    return free_port()


def _serve_baseline(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def hello(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    app = Starlette(routes=[Route("/baseline", hello)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, int]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    out = subprocess.run(  # noqa: S603 - fixed argv of our own
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rate is None or total is None:
        raise RuntimeError(out)
    if errors is not None:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return float(rate.group(1)), int(total.group(1))


def _section(
    rows: list[tuple[str, list[float]]], base: float, args: argparse.Namespace, counted: int, sent: int
) -> str:
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    runs0 = ", ".join(f"{r:,.0f}" for r in rows[0][1])
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on this machine ({machine}) by",
        "`.venv/bin/python bench/bench_simulator.py`.",
        "",
        "Method: `python -m simulator` as a subprocess on a free loopback port (one process, uvicorn",
        "with h11 and the asyncio loop, quota enforcement and webhooks off, 5 members x 30 days);",
        f"`wrk -t1 -c{args.connections} -d{args.seconds}s` with a Lua script setting the Bearer header;",
        f"{args.runs} runs per route, interleaved, median reported. Baseline: a one-route Starlette app",
        "answering a fixed JSON body under the same uvicorn settings, measured in the same run.",
        "",
        "| route | req/s (median) | runs | ratio to bare Starlette |",
        "|---|---:|---|---:|",
        f"| bare Starlette `GET /baseline` | {base:,.0f} | {runs0} | 1.00 |",
    ]
    for name, runs in rows[1:]:
        median = statistics.median(runs)
        lines.append(
            f"| {name} | {median:,.0f} | {', '.join(f'{r:,.0f}' for r in runs)} | {median / base:.2f} |"
        )
    slowest = min(statistics.median(runs) for _, runs in rows[1:])
    verdict = "meets" if slowest >= TARGET else "misses"
    lines += [
        "",
        f"The slowest simulator route runs at {slowest:,.0f} req/s: it {verdict} the"
        f" >= {TARGET:,.0f} req/s target.",
        f"The simulator's own quota counter saw {counted:,} data requests; wrk reported {sent:,} completed.",
        f"Load average (1 min) after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; wrk itself",
        "takes one core, and other work on the machine moves these figures by tens of percent between runs.",
        "",
    ]
    return "\n".join(lines)


def _write(section: str) -> None:
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone"
    )
    args = parser.parse_args()
    if args.serve_baseline:
        _serve_baseline(args.serve_baseline)
        return

    sim_port, base_port = _free_port(), _free_port()
    env = dict(
        os.environ,
        SIMULATOR_PORT=str(sim_port),
        SIMULATOR_HOST="127.0.0.1",
        SIMULATOR_QUOTA_ENABLED="false",
        SIMULATOR_WEBHOOKS_ENABLED="false",
        SIMULATOR_LOG_LEVEL="WARNING",
    )
    sim = subprocess.Popen([sys.executable, "-m", "simulator"], cwd=ROOT, env=env)
    base = subprocess.Popen([sys.executable, __file__, "--serve-baseline", str(base_port)], cwd=ROOT)  # noqa: S603
    try:
        sim_url, base_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{base_port}"
        wait_until_serving(f"{sim_url}/_sim/health", sim, 30)
        wait_until_serving(f"{base_url}/baseline", base, 30)
        user_id = httpx.get(f"{sim_url}/_sim/members").json()["members"][0]["user_id"]
        token = httpx.post(f"{sim_url}/_sim/members/{user_id}/tokens", json={}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        cycle_id = httpx.get(f"{sim_url}/developer/v2/cycle?limit=1", headers=auth).json()["records"][0]["id"]
        targets = [
            ("bare Starlette", f"{base_url}/baseline"),
            ("`GET /developer/v2/cycle?limit=10` (10 documents)", f"{sim_url}/developer/v2/cycle?limit=10"),
            ("`GET /developer/v2/cycle/{id}`", f"{sim_url}/developer/v2/cycle/{cycle_id}"),
        ]
        httpx.delete(f"{sim_url}/_sim/quota")
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "bearer.lua"
            script.write_text(LUA.format(token=token))
            rows: list[tuple[str, list[float]]] = [(name, []) for name, _ in targets]
            sent = 0
            for _ in range(args.runs):  # interleave routes so drift hits all alike
                for index, (_, url) in enumerate(targets):
                    rate, total = _wrk(url, script, args.seconds, args.connections)
                    rows[index][1].append(rate)
                    sent += total if index else 0
        counted = httpx.get(f"{sim_url}/_sim/quota").json()["apps"][
            next(iter(httpx.get(f"{sim_url}/_sim/quota").json()["apps"]))
        ]["total_requests"]
    finally:
        for proc in (sim, base):
            proc.terminate()
            proc.wait(timeout=10)
    section = _section(rows, statistics.median(rows[0][1]), args, counted, sent)
    print(section)  # noqa: T201 - a benchmark reports on stdout
    if not args.no_write:
        _write(section)


if __name__ == "__main__":
    main()
