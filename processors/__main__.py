"""``python -m processors``: the fetcher and the normalizer in one process, until SIGTERM or SIGINT.

``python -m processors renormalize [--dry-run] [--since DATE] [--yes] [--bulk]`` replays the document
log through the current normalizer into a new records generation and switches the read models to it
(``processors/renormalize.py``); ``python -m processors generations [--json] [--drop N]`` lists the
generations or stops writing one (``processors/generation_commands.py``).

Reads the settings once (``PROCESSORS_*``, ``FETCHER_*`` and the shared Kafka, PostgreSQL, WHOOP
and vault variables; ``docs/processors.md``), configures logging, and runs the fetcher
(``processors.fetcher.run_fetcher``) and the normalizer (``processors.normalizer_runner.run_normalizer``)
side by side in one event loop, with the ops server (``/metrics``, ``/healthz``, ``/readyz``;
``infra.ops_server``) on ``PROCESSORS_METRICS_HOST:PORT`` (default 127.0.0.1:9101); the normalizer
writes the configured records topic and every records generation not dropped
(``processors.generations``). ``PROCESSORS_RUN_FETCHER`` / ``PROCESSORS_RUN_NORMALIZER`` run one
of them alone (each scales as its own deployment). A signal
stops both cleanly: the fetcher's agents leave their group, leases are released as work finishes,
and the process exits within ``infra.shutdown.STOP_GRACE_S`` (``docs/operations.md``, rolling restarts).
Unless ``PIPELINE_ENV=dev``, it refuses to start on a public development secret
(``infra/pipeline_env.py``), before it connects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime

import asyncpg
import uvloop

from infra.consumer_lag import KafkaOffsets
from infra.db import create_pool
from infra.logs import LogSettings, configure_logging
from infra.member_keys import MemberKeys, PooledKeys
from infra.ops_server import serve_ops
from infra.pipeline_env import EXIT_REFUSED, PipelineEnvSettings, dev_secret_problems, refusal_line
from infra.shutdown import handle_stop_signals
from processors.clock import SystemClock
from processors.fetcher import policy_of, run_fetcher
from processors.generations import LiveGenerations
from processors.metrics import REGISTRY, ProcessorsProbe, Watched
from processors.normalizer_runner import run_normalizer
from processors.quota import PgQuota
from processors.settings import Settings

__all__ = ["main"]

logger = logging.getLogger("processors")


async def _ops_server(settings: Settings, pool: asyncpg.Pool, stack: contextlib.AsyncExitStack) -> None:
    """Serve /metrics, /healthz and /readyz on PROCESSORS_METRICS_HOST:PORT until the stack closes."""
    own, f = settings.processors, settings.fetcher
    watched = []
    if own.run_fetcher:
        watched.append(Watched(f.group_id, (f.webhooks_topic, f.connections_topic)))
    if own.run_normalizer:
        watched.append(Watched(own.normalizer_group_id, (f.documents_topic,)))
    quota = PgQuota(pool, policy_of(settings), SystemClock(), f.quota_bucket) if own.run_fetcher else None
    offsets = await KafkaOffsets.start(settings.kafka, "processors-metrics")
    stack.push_async_callback(offsets.stop)
    probe = ProcessorsProbe(pool, offsets, watched, quota)
    await serve_ops(stack, REGISTRY, probe, own.metrics_host, own.metrics_port)


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    handle_stop_signals(stop)  # and exit within STOP_GRACE_S of the signal
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(settings.postgres, migrate=True, max_size=3)
        stack.push_async_callback(pool.close)
        await _ops_server(settings, pool, stack)
        async with asyncio.TaskGroup() as group:
            if settings.processors.run_fetcher:
                group.create_task(run_fetcher(settings, stop))
            if settings.processors.run_normalizer:
                group.create_task(_normalizer(settings, pool, stop))
    logger.info("processors stopped")


async def _normalizer(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    await run_normalizer(
        settings.kafka,
        stop,
        group_id=settings.processors.normalizer_group_id,
        source=settings.fetcher.documents_topic,
        target=settings.processors.records_topic,
        keys=PooledKeys(pool, MemberKeys(settings.vault.keyring())),
        generations=LiveGenerations(pool),
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processors", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    renormalize = commands.add_parser(
        "renormalize",
        help="re-normalize the document log into a new records generation and serve it",
        description="Diff, then re-normalize whoop.documents.v1 into a new records generation, build a "
        "read-model version from it and switch the query API to it (docs/processors.md).",
    )
    renormalize.add_argument("--dry-run", action="store_true", help="print the diff only; change nothing")
    renormalize.add_argument(
        "--since",
        metavar="DATE",
        help="re-normalize only the documents stored at or after DATE (YYYY-MM-DD, UTC, or an ISO 8601 "
        "time); the other records are copied as they are",
    )
    renormalize.add_argument("--yes", action="store_true", help="do not ask (required off a terminal)")
    renormalize.add_argument("--bulk", action="store_true", help="build the read-model version in bulk")
    listed = commands.add_parser("generations", help="list the records generations, or drop one")
    listed.add_argument("--json", action="store_true", help="print one JSON document")
    listed.add_argument("--drop", type=int, metavar="N", help="stop writing generation N")
    listed.add_argument("--yes", action="store_true", help="do not ask (required off a terminal)")
    return parser.parse_args(argv)


def _renormalize(settings: Settings, args: argparse.Namespace) -> int:
    from processors import renormalize

    renormalize.configure_logging()
    try:
        since = None if args.since is None else renormalize.parse_since(args.since, datetime.now(UTC))
    except renormalize.Refused as exc:
        sys.stderr.write(f"refused, nothing changed: {exc}\n")
        return renormalize.EXIT_REFUSED
    options = renormalize.Options(dry_run=args.dry_run, since=since, yes=args.yes, bulk=args.bulk)
    return renormalize.command(settings, options)


def _generations(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console

    from processors import generation_commands, renormalize
    from processors.projections_cli import ProjectionsCli

    renormalize.configure_logging()
    err = Console(stderr=True)
    if args.drop is None:
        shown = generation_commands.show(settings, ProjectionsCli(), Console(), err, as_json=args.json)
        return uvloop.run(shown)
    return uvloop.run(
        generation_commands.drop(
            settings, args.drop, yes=args.yes, projections=ProjectionsCli(), ask=None, err=err
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings = Settings.from_env()
    if problems := dev_secret_problems(
        PipelineEnvSettings(),
        token_vault_keys=settings.vault.token_vault_keys,
        whoop_client_secret=settings.whoop.whoop_client_secret,
    ):
        sys.stderr.write(refusal_line("python -m processors", problems))
        return EXIT_REFUSED
    if args.command == "renormalize":
        return _renormalize(settings, args)
    if args.command == "generations":
        return _generations(settings, args)
    logs = LogSettings()
    configure_logging(
        "processors", logs.log_format, level=settings.processors.log_level, records=logs.log_records
    )
    if not (settings.processors.run_fetcher or settings.processors.run_normalizer):
        logger.error("PROCESSORS_RUN_FETCHER and PROCESSORS_RUN_NORMALIZER are both off: nothing to run")
        return 2
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
