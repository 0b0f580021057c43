"""``wear pull USER``: a backfill through the pipeline, as ``POST /v1/pull/{user_id}`` makes one.

The command records the pull job with the edge's own rules (``ingest.pull_jobs``: one active pull per
member, a daily allowance) and announces it as ``BackfillRequested`` on the connections topic
(``ingest.connect.publish_backfill``); the fetcher pages through WHOOP and reports progress in the job
(``processors.backfill``). ``--follow`` (or ``--job ID``, to follow one already recorded) polls that
progress to the end under a progress bar and ends with a summary line.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, get_args

import typer

from infra.progress_bar import progress_bar
from ingest.connect import ALL_RESOURCE_TYPES, publish_backfill
from ingest.errors import AppendUnavailable, PullInProgress, PullRateLimited
from ingest.pull_jobs import APPEND_FAILED, PullLimits
from ingest.pulls import parse_pull_request
from ingest.store import PullJob
from projections.commands import say
from schemas.records import ResourceType
from wear.common import STDERR, STDOUT, JsonOption, fail, parse_since, print_json, run, usage
from wear.pull_progress import estimate, job_document, summary_line, totals
from wear.users_edge import Edge, edge, edge_settings, known_user

__all__ = ["parse_types", "register"]

REQUESTED_BY = "admin:wear"
_POLL_S = 0.5


def parse_types(values: list[str] | None) -> tuple[ResourceType, ...]:
    """``--types cycle,sleep`` (or repeated) as collections in pipeline order; exit 2 on an unknown one."""
    if not values:
        return ALL_RESOURCE_TYPES
    wanted = {item.strip().lower() for value in values for item in value.split(",") if item.strip()}
    unknown = sorted(wanted - set(get_args(ResourceType)))
    if unknown or not wanted:
        usage(f"unknown type {(unknown or [''])[0][:40]!r}: use {', '.join(ALL_RESOURCE_TYPES)}")
    return tuple(t for t in ALL_RESOURCE_TYPES if t in wanted)


def _range(
    types: tuple[ResourceType, ...], since: datetime | None, default_days: int
) -> tuple[tuple[str, ...], datetime, datetime]:
    """The pull's types and range, checked by the route's own rules (``ingest.pulls``); exit 2 if refused."""
    body: dict[str, object] = {"types": list(types)}
    if since is not None:
        body["start"] = since.isoformat()
    try:
        return parse_pull_request(body, datetime.now(UTC), default_days)
    except ValueError as exc:
        usage(f"bad pull: {exc}")


async def _request(world: Edge, user_id: str, wanted: tuple[tuple[str, ...], datetime, datetime]) -> PullJob:
    own = world.settings.ingest
    types, start, end = wanted
    job = PullJob(str(uuid.uuid4()), user_id, types, start, end, REQUESTED_BY)
    try:
        await world.store.create_pull_job(job, PullLimits(own.pulls_per_day, own.pull_stale_s))
    except PullInProgress as exc:
        usage(f"pull {exc.job_id} of this user is still in progress: follow it with --job {exc.job_id}")
    except PullRateLimited as exc:
        usage(
            f"too many pulls of this user today (INGEST_PULLS_PER_DAY={own.pulls_per_day}): "
            f"retry in {exc.retry_after_s} s"
        )
    try:
        await publish_backfill(world.services, user_id, job)
    except AppendUnavailable as exc:
        await world.store.fail_pull_job(job.job_id, APPEND_FAILED)
        fail(
            f"Kafka unreachable or failing at {world.settings.kafka.kafka_bootstrap_servers}: {exc.code}; "
            "the pull was not announced (nothing fetched); run it again"
        )
    return job


async def _follow(world: Edge, job: PullJob, timeout_s: float | None) -> PullJob:
    """Poll the job until it is done or failed, under a progress bar on stderr."""
    started = time.monotonic()
    days = max(1, (job.end - job.start).days)
    with progress_bar(STDERR) as bar:
        task = bar.add_task(f"pull {job.job_id[:8]}", total=estimate(job, days), unit="records")
        # the total is re-estimated as collections end; set on the task itself, since rich's update(total=)
        # forgets the samples the rate and the ETA are measured from
        (state,) = (t for t in bar.tasks if t.id == task)
        while True:
            current = await world.store.pull_job(job.user_id, job.job_id)
            if current is None:
                fail(f"pull {job.job_id} disappeared (the user was erased?)")
            job = current
            done = totals(job)
            over = job.status in ("done", "failed")
            state.total = done.records if over else estimate(job, days)
            bar.update(
                task,
                completed=done.records,
                description=f"pull {job.job_id[:8]} {job.status}: {done.collections_done}/{done.collections} "
                f"collections, {done.pages} pages",
            )
            if over:
                return job
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                fail(
                    f"pull {job.job_id} still {job.status} after {timeout_s:g} s (is the fetcher running?); "
                    f"follow it again with --job {job.job_id}"
                )
            await asyncio.sleep(_POLL_S)


async def _pull(
    user: str,
    types: tuple[ResourceType, ...],
    since: datetime | None,
    follow: bool,
    job_id: str | None,
    timeout_s: float | None,
    as_json: bool,
) -> None:
    settings = edge_settings()
    started = time.monotonic()
    wanted = _range(types, since, settings.ingest.backfill_days)
    async with edge(settings) as world:
        connection = await known_user(world, user)
        user_id = connection.user_id
        if job_id is not None:
            found = await world.store.pull_job(user_id, job_id) if len(job_id) <= 64 else None
            if found is None:
                usage(f"unknown pull {job_id[:64]!r} of user {user_id}")
            job = found
        else:
            if connection.status != "connected":
                usage(f"user {user_id} is not connected (the WHOOP connection is {connection.status})")
            await world.open_kafka()
            job = await _request(world, user_id, wanted)
            if not as_json:
                say(
                    STDERR,
                    f"pull {job.job_id} requested for user {user_id}: {', '.join(job.resource_types)} "
                    f"from {job.start:%Y-%m-%d %H:%M} to {job.end:%Y-%m-%d %H:%M} UTC",
                )
        if follow or job_id is not None:
            job = await _follow(world, job, timeout_s)
            line = summary_line(job, time.monotonic() - started)
            if as_json:
                print_json(job_document(job))
            else:
                say(STDOUT, line)
            if job.status == "failed":
                fail(line)
            return
        current = await world.store.pull_job(user_id, job.job_id) or job
    if as_json:
        print_json(job_document(current))
    else:
        say(
            STDOUT,
            f"pull {current.job_id}: {current.status}; "
            f"follow it with: wear pull {user_id} --job {current.job_id}",
        )


async def _checked(
    user: str,
    since: str | None,
    types: list[str] | None,
    follow: bool,
    job_id: str | None,
    timeout_s: float | None,
    as_json: bool,
) -> None:
    """Read the options (bad ones exit 2 before anything is opened), then pull."""
    wanted = parse_types(types)
    start = parse_since(since) if since is not None else None
    if job_id is not None and (since is not None or types):
        usage("--job follows a pull already requested: --since and --types do not apply")
    await _pull(user, wanted, start, follow, job_id, timeout_s, as_json)


def register(app: typer.Typer) -> None:
    """Add ``wear pull`` to ``app``."""

    @app.command("pull")
    def pull(
        user: Annotated[str, typer.Argument(help="Our user id (uuid) or the member's WHOOP id (digits).")],
        since: Annotated[
            str | None,
            typer.Option(
                "--since",
                help="Start of the range: 30d, 12h, 2w ago or a date (default: INGEST_BACKFILL_DAYS).",
            ),
        ] = None,
        types: Annotated[
            list[str] | None,
            typer.Option(
                "--types",
                help="cycle, sleep, recovery, workout (comma-separated or repeated; default: all).",
            ),
        ] = None,
        follow: Annotated[
            bool, typer.Option("--follow", help="Follow the pull to the end (progress bar, summary).")
        ] = False,
        job: Annotated[
            str | None,
            typer.Option("--job", help="Follow this pull, already requested, instead of a new one."),
        ] = None,
        timeout: Annotated[
            float | None,
            typer.Option("--timeout", min=1, help="Give up following after this many seconds (exit 1)."),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Backfill a member through the pipeline (WHOOP → fetcher → documents → records → read models).

        Example:

            $ wear pull 10129 --since 90d --types sleep,recovery --follow

            pull 5b0e… requested for user 0d6f…: sleep, recovery from 2026-09-06 to 2026-12-05 UTC

            pull 5b0e…: done in 14.2 s: 2 collections, 8 pages, 180 records, 8 WHOOP calls

        Exit status:

        0 requested (with --follow: done);

        1 Kafka or PostgreSQL unreachable, or the pull failed;

        2 bad input: unknown user, not connected, bad --since, unknown type, a pull in progress.
        """
        run(_checked(user, since, types, follow, job, timeout, as_json))
