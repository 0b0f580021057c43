"""WearMetrics rendered by PostgreSQL (fetchRange) equal the Python rendering (single records), real rows."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import orjson

from projections.query.reads import TABLE_OF
from projections.query.wear_metrics import COLUMNS, SHAPES, wear_metrics, wear_metrics_sql
from projections.rows import Projectable
from tests.integration.projections.helpers import apply_batches
from tests.unit.projections.factory import T0, Member, cycle, history

ALICE = Member(482913)


async def test_both_renderings_give_the_same_json_for_every_kind(db_pool: asyncpg.Pool) -> None:
    records: list[Projectable] = [record for day in history(ALICE, 12) for record in day.records()]
    start = T0 + timedelta(days=30)
    records.append(cycle(ALICE, 999, start, None, start, strain=None))  # open, unscored: nulls
    await apply_batches(db_pool, [records])
    odd = 'a "quoted" \\ sport, é, \u2603, \n tab\t'
    await db_pool.execute("UPDATE rm_workouts SET sport_name = $1", odd)
    await db_pool.execute("UPDATE rm_cycles SET start_at = start_at + interval '0.999999 seconds'")
    await db_pool.execute("UPDATE rm_sleeps SET respiratory_rate_bpm = 16.123456789012345, in_bed_ms = 0")
    seen: set[tuple[str, str]] = set()
    for kind, shape in SHAPES.items():
        table, key = TABLE_OF[kind]
        sql = f"SELECT {', '.join(COLUMNS[kind])}, {wear_metrics_sql(kind, 'r')} AS item FROM {table} r"  # noqa: S608 - fixed names
        async with db_pool.acquire() as connection:  # the session's zone must not show in the output
            await connection.execute("SET TIME ZONE 'Asia/Kolkata'")
            try:
                rows = await connection.fetch(sql)
            finally:
                await connection.execute("RESET TIME ZONE")
        assert rows, kind
        for row in rows:
            rendered = orjson.loads(row["item"])
            assert rendered == orjson.loads(orjson.dumps(wear_metrics(kind, row))), (kind, row[key])
            assert list(rendered) == ["timestamp", "device_id", "source", "metrics", "meta"]
            assert list(rendered["metrics"]) == [field.key for field in shape.metrics]
            seen.update((kind, name) for name, value in rendered["metrics"].items() if value is None)
            if kind == "workouts":
                assert rendered["meta"]["sport_name"] == odd
    assert ("cycles", "strain") in seen  # the unscored cycle's nulls were compared too
