"""The README's run command works: it starts the infrastructure and the stages, and data flows."""

from __future__ import annotations

import asyncio
import re

from deploy.demo import CONNECTED
from deploy.run import STAGES
from tests.e2e.conftest import RunStarter


async def test_run_command_starts_what_exists_and_stops_cleanly(
    run_env: dict[str, str], start_run: RunStarter
) -> None:
    env = dict(run_env)
    del env[
        "PIPELINE_ENV"
    ]  # as on a fresh machine: the launcher itself runs the stages with PIPELINE_ENV=dev
    process = await start_run(20, env)
    output, _ = await asyncio.wait_for(process.communicate(), 110)
    text = output.decode()
    assert process.returncode == 0, text
    assert "Kafka ready" in text and "using the PostgreSQL named by DATABASE_URL" in text
    for stage in STAGES:
        said = f"starting {stage.name}" if stage.exists() else f"not built yet {stage.name}"
        assert said in text, text
    started = sum(stage.exists() for stage in STAGES)
    assert f"stopping {started} stage(s)" in text
    built = {stage.name for stage in STAGES if stage.exists()}
    if {"simulator", "edge"} <= built:
        # simulated members connect through the edge and their webhooks reach Kafka
        assert text.count(CONNECTED) >= 3, text
        assert re.search(r"whoop\.webhooks\.v1: [1-9]", text), text
        assert re.search(r"whoop\.connections\.v1: [1-9]", text), text
    if {"simulator", "edge", "processors", "projections"} <= built:
        # ... the fetcher turns them into documents, the normalizer into records, and the
        # projections make them readable through the query API with the member's own token
        assert re.search(r"whoop\.documents\.v1: [1-9]", text), text
        assert re.search(r"wear\.records\.v1: [1-9]", text), text
        assert re.search(r"[1-9]\d*(?: of \d+)? workouts readable through the query API", text), text
