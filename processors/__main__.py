"""``python -m processors``: the fetcher and the normalizer in one process, until SIGTERM or SIGINT.

Reads the settings once (``PROCESSORS_*``, ``FETCHER_*`` and the shared Kafka, PostgreSQL, WHOOP
and vault variables; ``docs/processors.md``), configures logging, and runs the fetcher
(``processors.fetcher.run_fetcher``) and the normalizer (``processors.normalizer_runner.run_normalizer``)
side by side in one event loop. ``PROCESSORS_RUN_FETCHER`` / ``PROCESSORS_RUN_NORMALIZER`` run
one of them alone (each scales as its own deployment). A signal stops both cleanly: the fetcher's
agents leave their group, leases are released as work finishes. Unless ``PIPELINE_ENV=dev``, it
refuses to start on a public development secret (``infra/pipeline_env.py``), before it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from infra.db import create_pool
from infra.member_keys import MemberKeys, PooledKeys
from infra.pipeline_env import EXIT_REFUSED, PipelineEnvSettings, dev_secret_problems, refusal_line
from processors.fetcher import run_fetcher
from processors.normalizer_runner import run_normalizer
from processors.settings import Settings

__all__ = ["main"]

logger = logging.getLogger("processors")


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as group:
        if settings.processors.run_fetcher:
            group.create_task(run_fetcher(settings, stop))
        if settings.processors.run_normalizer:
            pool = await create_pool(settings.postgres, migrate=True, max_size=2)
            stack.push_async_callback(pool.close)
            group.create_task(
                run_normalizer(
                    settings.kafka,
                    stop,
                    group_id=settings.processors.normalizer_group_id,
                    source=settings.fetcher.documents_topic,
                    target=settings.processors.records_topic,
                    keys=PooledKeys(pool, MemberKeys(settings.vault.keyring())),
                )
            )
    logger.info("processors stopped")


def main() -> int:
    settings = Settings.from_env()
    if problems := dev_secret_problems(
        PipelineEnvSettings(),
        token_vault_keys=settings.vault.token_vault_keys,
        whoop_client_secret=settings.whoop.whoop_client_secret,
    ):
        sys.stderr.write(refusal_line("python -m processors", problems))
        return EXIT_REFUSED
    logging.basicConfig(
        level=settings.processors.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if not (settings.processors.run_fetcher or settings.processors.run_normalizer):
        logger.error("PROCESSORS_RUN_FETCHER and PROCESSORS_RUN_NORMALIZER are both off: nothing to run")
        return 2
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
