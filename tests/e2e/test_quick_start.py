"""The README's run command works: it starts the infrastructure and the stages and says what it started."""

from __future__ import annotations

import asyncio
import sys

from deploy.paths import REPO_ROOT
from deploy.run import STAGES


async def test_run_command_starts_what_exists_and_stops_cleanly() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy",
        "run",
        "--seconds",
        "4",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 100)
    text = output.decode()
    assert process.returncode == 0, text
    assert "Kafka ready" in text and "PostgreSQL ready" in text
    for stage in STAGES:
        said = f"starting {stage.module}" if stage.exists() else f"not built yet {stage.module}"
        assert said in text, text
    started = sum(stage.exists() for stage in STAGES)
    assert f"stopped {started} stage(s)" in text
