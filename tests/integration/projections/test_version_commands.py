"""Every refusal of the rebuild and the version commands: one line, exit 2, nothing changed.

Run in-process (``main([...])``; the rebuild through ``rebuild.rebuild``, as its command installs
signal handlers) on real Kafka and PostgreSQL. The refusals off a terminal without ``--yes`` and the
unreachable services are in ``test_rebuild_command.py``.
"""

from __future__ import annotations

import io

import asyncpg
import pytest
from rich.console import Console

from infra.settings import KafkaSettings
from projections import rebuild, versions
from tests.integration.projections.helpers import produce
from tests.integration.projections.rebuild_harness import (
    in_process,
    project,
    served,
    settings_for,
    stream,
    version,
)
from tests.unit.projections.factory import Member

MEMBERS = [Member(630001), Member(630002)]


async def _registry(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    rows = await pool.fetch("SELECT version, state FROM read_model_versions ORDER BY version")
    return [(row["version"], row["state"]) for row in rows]


async def test_each_refusal_says_why_in_one_line_and_changes_nothing(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await produce(kafka_settings, records_topic, stream(MEMBERS, days=8))
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    await project(kafka_settings, settings, db_pool)

    async def refused(*args: str) -> str:
        code, out, err = await in_process(monkeypatch, capsys, settings, *args)
        assert code == 2, out + err
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
        return err.rstrip()

    assert await refused("switch", "99", "--yes") == "switch refused: no read-model version 99 (versions: 1)"
    assert await refused("drop", "99", "--yes") == "drop refused: no read-model version 99 (versions: 1)"
    assert await refused("switch", "1", "--yes") == "switch refused: version 1 is already served"
    assert await refused("rollback", "--yes") == (
        "rollback refused: no previous read-model version to roll back to (none served before, or dropped)"
    )
    assert await refused("drop", "1", "--yes") == (
        "drop refused: version 1 is served: switch to another version before dropping it"
    )

    async with db_pool.acquire() as connection, connection.transaction():  # a rebuild's version, unfinished
        building = await versions.create(connection, records_topic=None, bulk=False)
    assert await refused("switch", str(building.number), "--yes") == (
        f"switch refused: version {building.number} is not verified (its rebuild has not finished): "
        "use --force to serve it anyway"
    )

    async with db_pool.acquire() as holder:  # a rebuild running elsewhere holds the rebuild lock
        assert await versions.try_rebuild_lock(holder)
        output = io.StringIO()
        code = await rebuild.rebuild(settings, yes=True, console=Console(file=output, width=300))
        assert code == rebuild.EXIT_REFUSED
        assert output.getvalue().startswith("rebuild refused: a rebuild is already running"), (
            output.getvalue()
        )
        assert output.getvalue().count("\n") == 1
        assert await refused("drop", str(building.number), "--yes") == (
            f"drop refused: a rebuild is running and version {building.number} is building: "
            "stop the rebuild first"
        )
        await holder.execute("SELECT pg_advisory_unlock_all()")

    output = io.StringIO()
    code = await rebuild.rebuild(
        settings, yes=True, records_topic=f"{records_topic}.nope", console=Console(file=output, width=300)
    )
    assert code == rebuild.EXIT_REFUSED
    assert output.getvalue() == f"rebuild refused: topic {records_topic}.nope does not exist\n"
    assert await _registry(db_pool) == [(1, "serving"), (building.number, "building")]  # nothing changed
    assert await served(db_pool) == 1

    # what --force and the order of things allow: serve the unfinished version, back, then drop it
    code, _, err = await in_process(
        monkeypatch, capsys, settings, "switch", str(building.number), "--force", "--yes"
    )
    assert code == 0 and f"switched: version {building.number} serves (was version 1)" in err, err
    assert (await version(db_pool, building.number)).state == "serving"
    code, _, err = await in_process(monkeypatch, capsys, settings, "rollback", "--yes")
    assert code == 0, err
    code, _, err = await in_process(monkeypatch, capsys, settings, "drop", str(building.number), "--yes")
    assert code == 0, err
    assert await _registry(db_pool) == [(1, "serving")]
