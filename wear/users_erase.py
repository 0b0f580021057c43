"""``wear users erase``: Step 6's erasure (``ingest.erasure``), run from the data team's command.

The same job and the same five steps as ``DELETE /v1/me`` and ``python -m ingest erase``: the job is
recorded (or the member's pending one taken), then run here; when another process holds its lease
(the edge is running it), the command follows it to the end instead. A step that fails releases the
job at once, so running the command again resumes it (every step is safe to repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from infra.member_keys import MemberKeys
from ingest.erasure import Eraser
from ingest.erasure_jobs import ErasureJobs
from wear.users_edge import Edge

__all__ = ["STEPS", "erase_member"]

STEPS = ("close", "whoop", "announce", "tombstones", "delete")
_FOLLOW_S = 0.5

OnStep = Callable[[str], Awaitable[None]]


async def erase_member(world: Edge, user_id: str, on_step: OnStep) -> tuple[str, dict[str, object]]:
    """Erase ``user_id``: the job id and its final progress (counts only). ``on_step`` hears each step."""
    jobs = ErasureJobs(world.pool)
    job = await jobs.request(user_id, "admin")
    lease_s = world.settings.ingest.erasure_lease_s
    eraser = Eraser(world.services, jobs, MemberKeys(world.settings.vault.keyring()))

    async def report(step: str, progress: dict[str, object]) -> None:
        await on_step(step)

    last_step = ""
    while True:
        claimed = await jobs.claim(lease_s, job.job_id)
        if claimed is not None:
            try:
                return job.job_id, await eraser.run(claimed, report)
            except Exception as exc:
                # taken again at once by the next run; when PostgreSQL is what failed, the lease expires
                with contextlib.suppress(Exception):
                    await jobs.release(job.job_id, type(exc).__name__, 0.0)
                raise
        current = await jobs.job(job.job_id)
        if current is None or current.status == "done":
            return job.job_id, (current or job).progress
        step = str(current.progress.get("step", ""))
        if step and step != last_step:
            await on_step(step)
            last_step = step
        await asyncio.sleep(_FOLLOW_S)
