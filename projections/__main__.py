"""``python -m projections``: run the projection workers (and, if asked, the query API).

- ``python -m projections`` runs the read-model projection of ``wear.records.v1`` and the
  sync-activity projection (webhooks, fetches) until SIGTERM/SIGINT, with the ops server
  (``/metrics``, ``/healthz``, ``/readyz``; ``infra.ops_server``) on ``PROJECTIONS_METRICS_HOST:PORT``
  (default 127.0.0.1:9102); with ``--serve-api`` (or
  ``PROJECTIONS_SERVE_API=true``) it also serves the query API on ``PROJECTIONS_API_HOST:PORT``.
- ``python -m projections api`` serves only the query API (standalone, e.g. for benchmarks).
- ``python -m projections openapi [--check]`` writes (or checks) ``projections/query/openapi.json``.
- ``python -m projections admin-token LABEL SCOPES`` prints a new admin token once, with the
  ``PROJECTIONS_ADMIN_TOKENS`` item (its hash) to configure.
- ``python -m projections rebuild [--bulk] [--yes] [--force] [--records-topic TOPIC]
  [--with-sync-activity] [--catch-up-s SECONDS]`` builds a new read-model version from the log beside
  the served one, verifies it and switches to it (``projections/rebuild.py``).
- ``python -m projections versions [--json]``, ``switch VERSION [--force] [--yes]``, ``rollback
  [--yes]``, ``drop VERSION [--yes]``: the read-model versions by hand (``projections/version_commands.py``).

Settings are read once here; logging is configured once here. Unless ``PIPELINE_ENV=dev``, the
workers, the API and the rebuild refuse to start on a public development secret
(``infra/pipeline_env.py``), before they connect anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

import uvicorn
import uvloop

from infra import logs
from infra.appender import DurableAppender
from infra.consumer_lag import KafkaOffsets
from infra.db import create_pool
from infra.dead_letters import DeadLetters
from infra.http_server import server_config
from infra.member_keys import MemberKeys
from infra.ops_server import serve_ops
from infra.pipeline_env import (
    EXIT_REFUSED,
    PipelineEnvSettings,
    SharedSecretsSettings,
    dev_secret_problems,
    refusal_line,
)
from infra.shutdown import handle_stop_signals

from .metrics import REGISTRY, ProjectionsProbe
from .runner import ActivityWorker, ProjectionWorker, activity_consumer_for, projection_consumer
from .settings import ProjectionsSettings, Settings

__all__ = ["api_server", "main", "run"]

logger = logging.getLogger("projections")


def api_server(settings: Settings) -> uvicorn.Server:
    """The query API's server on PROJECTIONS_API_HOST:PORT under the PROJECTIONS_* HTTP limits."""
    from .query.api import create_api

    own = settings.projections
    config = server_config(
        create_api(settings), host=own.api_host, port=own.api_port, limits=own.http_limits(), lifespan="on"
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment] # run() owns the signals
    return server


async def run(settings: Settings, *, workers: bool = True, api: bool = False) -> None:
    """Run the workers and/or the API until SIGTERM or SIGINT, then stop (within ``STOP_GRACE_S``)."""
    stop = asyncio.Event()
    handle_stop_signals(stop)  # and exit within STOP_GRACE_S of the signal
    own = settings.projections
    async with contextlib.AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        if workers:
            pool = await create_pool(settings.postgres, migrate=True, max_size=own.db_pool_size)
            stack.push_async_callback(pool.close)
            consumer = projection_consumer(settings)
            appender = await DurableAppender.start(settings.kafka, "projections-dlq")
            stack.push_async_callback(appender.stop)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            keys = MemberKeys(settings.vault.keyring())
            worker = ProjectionWorker(consumer, pool, own, DeadLetters(appender, "projections"), keys=keys)
            tasks.append(asyncio.create_task(worker.run(stop), name="projection"))
            if own.activity_topics:
                activity_consumer = activity_consumer_for(settings)
                await activity_consumer.start()
                stack.push_async_callback(activity_consumer.stop)
                activity = ActivityWorker(activity_consumer, pool, own)
                tasks.append(asyncio.create_task(activity.run(stop), name="activity"))
            logger.info("projecting %s in group %s", own.records_topic, own.group_id)
            offsets = await KafkaOffsets.start(settings.kafka, "projections-metrics")
            stack.push_async_callback(offsets.stop)
            probe = ProjectionsProbe(pool, offsets, own)
            await serve_ops(stack, REGISTRY, probe, own.metrics_host, own.metrics_port)
        server = None
        if api:  # the API opens a read pool of its own (see QueryServices.open)
            server = api_server(settings)
            tasks.append(asyncio.create_task(server.serve(), name="api"))
            logger.info("query API on %s:%s", own.api_host, own.api_port)
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        if server is not None:
            server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopped.cancel()
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]


def _admin_token(label: str, scopes: str) -> int:
    token, item = ProjectionsSettings.new_admin_token(label, scopes)  # refuses a bad label or scope first
    sys.stdout.write(f"token (shown once): {token}\nPROJECTIONS_ADMIN_TOKENS item: {item}\n")
    return 0


def _openapi(check: bool) -> int:
    from .query.api import OPENAPI_PATH
    from .query.openapi import render_spec

    rendered = render_spec()
    if check:
        if not OPENAPI_PATH.exists() or OPENAPI_PATH.read_bytes() != rendered:
            stale = "projections/query/openapi.json is out of date: run python -m projections openapi\n"
            sys.stderr.write(stale)
            return 1
        return 0
    OPENAPI_PATH.write_bytes(rendered)
    sys.stdout.write(f"wrote {OPENAPI_PATH}\n")
    return 0


_VERSION_COMMANDS = ("versions", "switch", "rollback", "drop")
_YES = "do not ask (required when stdin is not a terminal)"


def _version_options(args: argparse.Namespace) -> dict[str, object]:
    if args.command == "versions":
        return {"as_json": args.json}
    options: dict[str, object] = {"yes": args.yes}
    if args.command in ("switch", "drop"):
        options["number"] = args.version
    if args.command == "switch":
        options["force"] = args.force
    return options


def _parser() -> argparse.ArgumentParser:
    """The command line: the workers by default, the query API, and the version commands."""
    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__.split("\n")[0])
    parser.add_argument("--serve-api", action="store_true", help="also serve the query API")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("api", help="serve only the query API")
    openapi = commands.add_parser("openapi", help="write projections/query/openapi.json")
    openapi.add_argument("--check", action="store_true", help="fail when the file is out of date")
    admin = commands.add_parser("admin-token", help="make an admin token")
    admin.add_argument("label")
    admin.add_argument("scopes", help="scope[+scope...] among read, status")
    rebuild = commands.add_parser(
        "rebuild", help="build a new read-model version from the log, verify it and serve it"
    )
    rebuild.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before the switch (required when stdin is not a terminal)",
    )
    rebuild.add_argument(
        "--bulk", action="store_true", help="load the new version with COPY, keys and indexes built after"
    )
    rebuild.add_argument(
        "--force", action="store_true", help="serve the version even when its verification does not balance"
    )
    rebuild.add_argument(
        "--records-topic",
        metavar="TOPIC",
        help="build from this records topic (a generation of `processors renormalize`); "
        "default: the served version's topic",
    )
    rebuild.add_argument(
        "--with-sync-activity",
        action="store_true",
        help="also rebuild rm_sync_activity in place (forgets the webhooks older than the topic's "
        "30-day retention; refused while a projection runs)",
    )
    rebuild.add_argument(
        "--catch-up-s",
        type=float,
        default=None,
        metavar="SECONDS",
        help="longest wait for the new version to catch up with the served one at the switch (120)",
    )
    listed = commands.add_parser("versions", help="list the read-model versions")
    listed.add_argument("--json", action="store_true", help="print one JSON document")
    switch = commands.add_parser("switch", help="serve another read-model version")
    switch.add_argument("version", type=int)
    switch.add_argument("--force", action="store_true", help="also a version that is not verified")
    switch.add_argument(
        "--yes", action="store_true", help="do not ask (required when stdin is not a terminal)"
    )
    rollback = commands.add_parser("rollback", help="serve the previous read-model version again")
    rollback.add_argument(
        "--yes", action="store_true", help="do not ask (required when stdin is not a terminal)"
    )
    drop = commands.add_parser("drop", help="delete a read-model version that is not served")
    drop.add_argument("version", type=int)
    drop.add_argument("--yes", action="store_true", help=_YES)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "openapi":
        return _openapi(args.check)
    if args.command == "admin-token":
        return _admin_token(args.label, args.scopes)
    settings = Settings.from_env()
    carried = SharedSecretsSettings()  # set in the environment, though not used
    # the workers (and the rebuild) open sealed records with the vault's keyring; the API and the
    # version commands do not
    opens_records = args.command not in ("api", *_VERSION_COMMANDS)
    vault_keys = settings.vault.token_vault_keys if opens_records else carried.token_vault_keys
    if problems := dev_secret_problems(
        PipelineEnvSettings(), token_vault_keys=vault_keys, whoop_client_secret=carried.whoop_client_secret
    ):
        sys.stderr.write(refusal_line("python -m projections", problems))
        return EXIT_REFUSED
    if args.command == "rebuild":
        from . import rebuild as rebuilding

        rebuilding.configure_logging()
        return rebuilding.command(
            settings,
            yes=args.yes,
            bulk=args.bulk,
            force=args.force,
            records_topic=args.records_topic,
            sync_activity=args.with_sync_activity,
            catch_up_s=rebuilding.CATCH_UP_S if args.catch_up_s is None else args.catch_up_s,
        )
    if args.command in _VERSION_COMMANDS:
        from . import version_commands
        from .commands import configure_logging

        configure_logging()
        return version_commands.command(args.command, settings, **_version_options(args))
    log = logs.LogSettings()
    stage = "projections-api" if args.command == "api" else "projections"
    logs.configure_logging(
        stage, log.log_format, level=settings.projections.log_level, records=log.log_records
    )
    if args.command == "api":
        uvloop.run(run(settings, workers=False, api=True))
    else:
        uvloop.run(run(settings, workers=True, api=args.serve_api or settings.projections.serve_api))
    return 0


if __name__ == "__main__":
    sys.exit(main())
