"""``python -m processors renormalize`` refuses in one line with its exit code, and resumes after a stop.

Bad input is refused before anything connects (exit 2): a ``--since`` that is not a date or lies
ahead, stdin not a terminal without ``--yes``. Kafka or PostgreSQL unreachable fails in one line naming
host:port, without a traceback or a secret (exit 1). A second renormalization while one runs is
refused (exit 2). An interrupted one keeps its generation (exit 130) and the next run resumes it.
"""

from __future__ import annotations

import asyncio
import io
import sys

import asyncpg
import pytest
from rich.console import Console

from infra.settings import KafkaSettings
from processors import generations
from processors.renormalize import EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, Options, renormalize
from tests.integration.processors.renormalize_harness import (
    World,
    delete_topics,
    live_normalizer,
    make_world,
    member_documents,
    normalized_all,
    produce_documents,
)
from tests.integration.projections import conftest as projection_fixtures
from tests.integration.projections.conftest import with_search_path
from tests.integration.projections.helpers import wait_for
from tests.integration.projections.rebuild_harness import served

records_topic = projection_fixtures.records_topic  # a records topic shaped like wear.records.v1, and its .dlq


async def renormalize_command(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``python -m processors renormalize ARGS`` with stdin not a terminal: code, stdout, stderr."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "processors",
        "renormalize",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


def console(output: io.StringIO) -> Console:
    return Console(file=output, width=300)


@pytest.mark.timeout(240)
async def test_refusals_and_failures_are_one_line_with_their_exit_code(
    kafka_settings: KafkaSettings,
    records_topic: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    world = await make_world(kafka_settings, db_pool, pg_schema, database_url, records_topic)
    try:
        await _refusals(world, database_url, pg_schema)
    finally:
        await delete_topics(kafka_settings, [world.documents, world.generation(2)])


async def _refusals(world: World, database_url: str, pg_schema: str) -> None:
    env = world.env
    for args, reason in (
        (
            ("--since", "yesterday", "--yes"),
            "--since 'yesterday' is not a date (YYYY-MM-DD) or an ISO 8601 time",
        ),
        (("--since", "2999-01-01", "--dry-run"), "--since 2999-01-01T00:00:00+00:00 lies in the future"),
        ((), "stdin is not a terminal: pass --yes to renormalize without a question (or --dry-run)"),
    ):
        code, out, err = await renormalize_command(env, *args)
        assert code == EXIT_REFUSED, err
        assert err.startswith(f"refused, nothing changed: {reason}") and err.count("\n") == 1, err
        assert out == "" and "Traceback" not in err

    code, out, err = await renormalize_command({**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "--dry-run")
    assert code == 1, err
    assert err.startswith("renormalize failed: Kafka unreachable or failing at 127.0.0.1:1: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err

    secret = with_search_path("postgresql://whoop:s3cret-Passw0rd@127.0.0.1:1/whoop", pg_schema)
    code, out, err = await renormalize_command({**env, "DATABASE_URL": secret}, "--yes")
    assert code == 1, err
    assert err.startswith("renormalize failed: PostgreSQL unreachable or failing at 127.0.0.1:1/whoop: "), err
    assert err.count("\n") == 1 and "s3cret" not in err and "Traceback" not in err, err

    # a second renormalization while one runs (holds the lock) is refused after its diff
    async with world.pool.acquire() as holder:
        assert await generations.try_lock(holder)
        output = io.StringIO()
        code = await renormalize(
            world.settings,
            Options(yes=True),
            projections=world.cli(),
            console=console(output),
            out=console(io.StringIO()),
        )
        assert code == EXIT_REFUSED
        running = "a renormalization is already running (python -m processors renormalize)"
        assert output.getvalue().rstrip().endswith(f"refused, nothing changed: {running}"), output.getvalue()
    async with world.pool.acquire() as connection:
        assert [g.number for g in await generations.all_generations(connection)] == [1]


@pytest.mark.timeout(300)
async def test_an_interrupted_renormalization_keeps_its_generation_and_the_next_run_resumes_it(
    kafka_settings: KafkaSettings,
    records_topic: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    world = await make_world(kafka_settings, db_pool, pg_schema, database_url, records_topic)
    try:
        await produce_documents(world, member_documents(4, days=6))
        async with live_normalizer(world, normalizer_version=1):
            await normalized_all(world)
            stop = asyncio.Event()

            async def interrupt_once_registered() -> None:
                async def registered() -> bool:
                    async with db_pool.acquire() as connection:
                        return await generations.get(connection, 2) is not None

                await wait_for(registered, 60, "generation 2 registered")
                stop.set()

            interrupting = asyncio.create_task(interrupt_once_registered())
            err = io.StringIO()
            code = await renormalize(
                world.settings,
                Options(yes=True),
                projections=world.cli(),
                stop=stop,
                console=console(err),
                out=console(io.StringIO()),
                normalizer_version=2,
            )
            await interrupting
            assert code == EXIT_INTERRUPTED, err.getvalue()
            assert "interrupted " in err.getvalue() and "run the same command again" in err.getvalue()
            async with db_pool.acquire() as connection:
                kept = await generations.get(connection, 2)
            assert kept is not None and kept.state == "filling" and kept.topic == world.generation(2)

            err = io.StringIO()
            code = await renormalize(
                world.settings,
                Options(yes=True),
                projections=world.cli(),
                console=console(err),
                out=console(io.StringIO()),
                normalizer_version=2,
            )
            assert code == EXIT_OK, err.getvalue()
            assert f"resuming generation 2 ({world.generation(2)})" in err.getvalue()
            async with db_pool.acquire() as connection:
                done = await generations.get(connection, 2)
                assert [g.number for g in await generations.all_generations(connection)] == [1, 2]
            assert done is not None and done.state == "complete"
            assert await served(db_pool) == 2
    finally:
        await delete_topics(kafka_settings, [world.documents, world.generation(2)])
