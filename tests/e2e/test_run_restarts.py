"""``make run`` restarts a stage that dies, says so in its view, and the restarted stage serves again."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tests.e2e.conftest import RunStarter


def _stage_pids(parent: int, module: str) -> set[int]:
    """The pids of the ``python -m <module>`` children of ``parent``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"-m" in argv and argv[argv.index(b"-m") + 1] == module.encode():
            found.add(int(entry.name))
    return found


async def _healthy_pid(parent: int, module: str, health_url: str, other_than: int | None = None) -> int:
    """Wait until one ``module`` child (not ``other_than``) runs and its health probe answers 200."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            pids = _stage_pids(parent, module) - {other_than}
            if len(pids) == 1:
                try:
                    if (await client.get(health_url)).status_code == 200:
                        return pids.pop()
                except httpx.TransportError:
                    pass  # not listening yet
            await asyncio.sleep(0.2)


async def test_a_killed_stage_is_restarted_and_the_view_says_so(
    run_env: dict[str, str], start_run: RunStarter
) -> None:
    health = f"http://127.0.0.1:{run_env['PROJECTIONS_METRICS_PORT']}/healthz"
    process = await start_run(30, {**run_env, "COLUMNS": "200"})  # the view as in a wide terminal
    output = asyncio.create_task(process.communicate())
    try:
        async with asyncio.timeout(60):
            first = await _healthy_pid(process.pid, "projections", health)
        os.kill(first, signal.SIGKILL)
        async with asyncio.timeout(20):
            second = await _healthy_pid(process.pid, "projections", health, first)
    finally:
        out, _ = await asyncio.wait_for(output, 110)
    text = out.decode()
    assert process.returncode == 0, text  # one death is not a reason to stop the run
    assert "projections killed by SIGKILL; restarting it in 1 s" in text, text
    assert f"projections restarted (pid {second}, restart 1)" in text, text
    # the stages table of the view
    assert f"running (pid {second}), restarted 1x (last: killed by SIGKILL)" in text, text
    assert "stopping 4 stage(s)" in text, text
