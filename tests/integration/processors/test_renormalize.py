"""``python -m processors renormalize`` end to end on real Kafka and PostgreSQL: a unit bug fixed by replay.

A normalizer that reads WHOOP's kilojoules as kilocalories (normalizer version 1) is deployed: the live
normalizer and the live projection (``version=None``) serve its wrong energy. The fix (version 2) is
deployed, and ``renormalize`` runs: its dry-run diff names exactly ``energy_kcal`` on cycles and
workouts (the envelope fields apart), then it fills generation 2, a read-model version is built from it
in a ``python -m projections rebuild`` child process and switched to. A phone polls the query API every
20 ms throughout: every answer is a 2xx with ``X-Read-Model-Version``, versions never go back, answers
carry the wrong energy before the switch and the right one after, never a mix. Documents that arrive
during the run reach generation 2; ``python -m projections rollback`` serves version 1 again, its
checksums equal to before the switch; documents that arrive after still reach both generations.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re

import asyncpg
import pytest
from rich.console import Console

from infra.settings import KafkaSettings
from processors import generations
from processors.projections_cli import ProjectionsCli
from processors.renormalize import EXIT_OK, Options, renormalize
from projections import versions
from tests.integration.processors.renormalize_harness import (
    KJ_PER_KCAL,
    World,
    delete_topics,
    kilojoules,
    live_normalizer,
    make_world,
    member_documents,
    normalized_all,
    opened_records,
    produce_documents,
)
from tests.integration.projections import conftest as projection_fixtures
from tests.integration.projections.conftest import ApiHarness
from tests.integration.projections.helpers import wait_for
from tests.integration.projections.rebuild_harness import command, reaches_end, running, served, sums

_FIELD = re.compile(r"^  (\w+)\.(\w+): ([\d,]+)$")
_EXAMPLE = re.compile(r"(?m)^  \S+ (?:Cycle|Workout)Recorded\.energy_kcal: ([\d.]+) -> ([\d.]+)$")


api = projection_fixtures.api  # the query API in-process on the test's schema
records_topic = projection_fixtures.records_topic  # a records topic shaped like wear.records.v1, and its .dlq


def changed_fields(printed: str) -> dict[str, int]:
    """``{"Type.field": records}`` from the diff's "changed fields" lines."""
    lines = printed.splitlines()
    start = lines.index("changed fields (records changed):") + 1
    found: dict[str, int] = {}
    for line in lines[start:]:
        match = _FIELD.match(line)
        if not match:
            break
        found[f"{match[1]}.{match[2]}"] = int(match[3].replace(",", ""))
    return found


def console(output: io.StringIO) -> Console:
    return Console(file=output, width=300)


class OrderedCli(ProjectionsCli):
    """The real ``python -m projections`` commands; the rebuild starts once ``ready`` is set."""

    def __init__(self, world: World, ready: asyncio.Event) -> None:
        super().__init__(env=world.env)
        self.ready = ready

    async def rebuild(self, topic: str, *, bulk: bool, stop: asyncio.Event) -> int:
        await self.ready.wait()
        return await super().rebuild(topic, bulk=bulk, stop=stop)


def wrong_kcal(kilojoule: float) -> float:
    """The bug: WHOOP's kilojoules taken for kilocalories."""
    return kilojoule


@pytest.mark.timeout(300)
async def test_a_kj_read_as_kcal_bug_is_fixed_by_renormalizing_and_rolled_back_byte_for_byte(
    kafka_settings: KafkaSettings,
    records_topic: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    api: ApiHarness,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    world = await make_world(kafka_settings, db_pool, pg_schema, database_url, records_topic)
    try:
        await _scenario(world, api, monkeypatch, caplog)
    finally:
        await delete_topics(kafka_settings, [world.documents, world.generation(2)])


async def _scenario(
    world: World, api: ApiHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    polled = member_documents(0, days=8)
    other = member_documents(1, days=8)
    during = member_documents(2, days=4)  # arrives while the renormalization runs
    after = member_documents(3, days=3)  # arrives after the switch and the rollback
    user = polled[0].user_id
    cycles_kj = kilojoules(polled + other, "cycle")
    workouts_kj = kilojoules(polled + other, "workout")
    assert cycles_kj and workouts_kj
    await produce_documents(world, polled + other)

    # the wrong normalizer (version 1) is deployed; the live projection serves what it made
    monkeypatch.setattr("processors.bounded_fields.kcal_from_kj", wrong_kcal)
    db_pool = world.pool
    async with running(world.projections, db_pool):
        async with live_normalizer(world, normalizer_version=1):
            await normalized_all(world)
        monkeypatch.undo()  # the fix, deployed as normalizer version 2
        async with live_normalizer(world, normalizer_version=2):
            await reaches_end(db_pool, world.kafka, world.projections.projections.group_id, world.records)
            first = await api.get(f"/v1/data/{user}/daily", user)
            assert first.status_code == 200 and first.headers["x-read-model-version"] == "1"
            assert _energies(first.json(), cycles_kj) == {"wrong"}

            # the dry run: the diff names exactly energy_kcal, on cycles and workouts; nothing changes
            out = io.StringIO()
            code = await renormalize(
                world.settings,
                Options(dry_run=True),
                projections=world.cli(),
                console=console(io.StringIO()),
                out=console(out),
                normalizer_version=2,
            )
            printed = out.getvalue()
            assert code == EXIT_OK, printed
            assert changed_fields(printed) == {
                "CycleRecorded.energy_kcal": len(cycles_kj),
                "WorkoutRecorded.energy_kcal": len(workouts_kj),
            }, printed
            total = next(line for line in printed.splitlines() if line.lstrip().startswith("total"))
            records = len(polled) + len(other)
            changed = len(cycles_kj) + len(workouts_kj)
            assert total.split()[1:] == ["0", "0", f"{changed:,}", f"{records - changed:,}", "0"], printed
            assert (
                f"envelope fields (change with the normalizer version, not counted as changes): "
                f"event_id {records:,}, normalizer_version {records:,}"
            ) in printed
            examples = _EXAMPLE.findall(printed)
            assert examples and all(
                float(new) == pytest.approx(float(old) / KJ_PER_KCAL) for old, new in examples
            )
            assert printed.rstrip().endswith("dry run: nothing changed")
            async with db_pool.acquire() as connection:
                assert [g.number for g in await generations.all_generations(connection)] == [1]
                assert len(await versions.all_versions(connection)) == 1

            # the renormalization, with a phone polling the query API every 20 ms throughout
            answers: list[tuple[int, str | None, set[str]]] = []
            polling = asyncio.Event()

            async def phone() -> None:
                while not polling.is_set():
                    response = await api.get(f"/v1/data/{user}/daily", user)
                    kinds = _energies(response.json(), cycles_kj) if response.status_code == 200 else set()
                    answers.append(
                        (response.status_code, response.headers.get("x-read-model-version"), kinds)
                    )
                    await asyncio.sleep(0.02)

            ready = asyncio.Event()

            async def documents_arrive() -> None:  # while generation 2 is filled
                async def registered() -> bool:
                    async with db_pool.acquire() as connection:
                        return await generations.get(connection, 2) is not None

                await wait_for(registered, 60, "generation 2 registered")
                await produce_documents(world, during)
                await normalized_all(world)
                await reaches_end(db_pool, world.kafka, world.projections.projections.group_id, world.records)
                before_switch.update(await sums(db_pool, 1))
                ready.set()

            before_switch: dict[str, versions.TableSum] = {}
            reading = asyncio.create_task(phone())
            arriving = asyncio.create_task(documents_arrive())
            out, err = io.StringIO(), io.StringIO()
            code = await renormalize(
                world.settings,
                Options(yes=True),
                projections=OrderedCli(world, ready),
                console=console(err),
                out=console(out),
                normalizer_version=2,
            )
            await arriving

            async def answered_by_two() -> bool:
                return any(number == "2" for _, number, _ in answers)

            await wait_for(answered_by_two, 10, "an answer of version 2")
            polling.set()
            await reading
            assert code == EXIT_OK, out.getvalue() + err.getvalue()
            summary = out.getvalue().rstrip().splitlines()[-1]
            documents = len(polled) + len(other) + len(during)
            assert summary.startswith(
                f"re-normalized: {documents:,} documents into generation 2 ({world.generation(2)})"
            ), summary
            assert summary.endswith("; the read models serve it"), summary
            assert f"registered generation 2 ({world.generation(2)})" in err.getvalue()

            # the phone: only 2xx, every answer versioned, never back, wrong before the switch, right after
            assert answers and {status for status, _, _ in answers} == {200}
            seen = [int(v) for _, v, _ in answers if v is not None]
            assert len(seen) == len(answers) and seen == sorted(seen) and seen[0] == 1 and seen[-1] == 2
            for _, number, kinds in answers:
                assert kinds == ({"wrong"} if number == "1" else {"right"}), (number, kinds)

            # version 2 serves generation 2: every energy right, the documents that arrived during it too
            async with db_pool.acquire() as connection:
                now = await versions.serving(connection)
                assert (now.number, now.records_topic) == (2, world.generation(2))
                made = await generations.get(connection, 2)
            assert made is not None and (made.state, made.normalizer_version) == ("complete", 2)
            served_cycles = await _served(db_pool, "rm_cycles", "cycle_id")
            served_workouts = await _served(db_pool, "rm_workouts", "workout_id")
            assert {k: v for k, v in served_cycles.items() if k in cycles_kj} == {
                k: pytest.approx(v / KJ_PER_KCAL) for k, v in cycles_kj.items()
            }
            assert {k: v for k, v in served_workouts.items() if k in workouts_kj} == {
                k: pytest.approx(v / KJ_PER_KCAL) for k, v in workouts_kj.items()
            }
            assert set(kilojoules(during, "cycle")) <= set(served_cycles)
            in_generation = await opened_records(world, world.generation(2))
            assert {value["normalizer_version"] for _, value, _ in in_generation if value} == {2}
            after_switch = await api.get(f"/v1/data/{user}/daily", user)
            assert after_switch.headers["x-read-model-version"] == "2"

            # rollback: version 1 (and generation 1) served again, byte for byte as before the switch
            code, printed = await command(world.projections, "rollback", "--yes")
            assert code == 0, printed
            assert await served(db_pool) == 1
            assert await sums(db_pool, 1) == before_switch
            rolled = await api.get(f"/v1/data/{user}/daily", user)
            assert rolled.headers["x-read-model-version"] == "1" and rolled.json() == first.json()

            # documents that arrive now reach the served generation 1 and generation 2 alike
            await produce_documents(world, after)
            await normalized_all(world)
            await reaches_end(db_pool, world.kafka, world.projections.projections.group_id, world.records)
            new_user = after[0].user_id
            in_two = {key for key, _, _ in await opened_records(world, world.generation(2))}
            assert {key for key in in_two if key.startswith(new_user.encode() + b":")}
            assert new_user in {
                row["user_id"] for row in await db_pool.fetch("SELECT user_id FROM rm_cycles")
            }

    # no health value was logged on the way
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [kj for kj in cycles_kj.values() if repr(kj) in logged]


def _energies(body: dict[str, object], cycles_kj: dict[str, float]) -> set[str]:
    """Whether the daily summaries carry WHOOP's kJ as kcal ("wrong") or kJ / 4.184 ("right")."""
    kinds: set[str] = set()
    records = body["records"]
    assert isinstance(records, list)
    for day in records:
        kcal, cycle = day.get("calories_kcal"), day.get("cycle_id")
        if kcal is None or cycle not in cycles_kj:
            continue
        if kcal == pytest.approx(cycles_kj[cycle]):
            kinds.add("wrong")
        elif kcal == pytest.approx(cycles_kj[cycle] / KJ_PER_KCAL):
            kinds.add("right")
        else:
            kinds.add(f"unexpected {kcal}")
    return kinds


async def _served(pool: asyncpg.Pool, table: str, id_column: str) -> dict[str, float]:
    """``energy_kcal`` by resource id in the served version's ``table``."""
    async with pool.acquire() as connection, connection.transaction():
        await versions.use(connection, await versions.serving(connection))
        rows = await connection.fetch(f"SELECT {id_column}::text AS id, energy_kcal FROM {table}")  # noqa: S608 - fixed names
    return {row["id"]: row["energy_kcal"] for row in rows if row["energy_kcal"] is not None}
