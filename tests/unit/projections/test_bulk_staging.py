"""The bulk load's pure parts: the rows a batch stages, and staging tables that match the final ones."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from projections.bulk import BulkStore, staged_rows
from projections.bulk_sql import BASE_TABLES, BaseTable, ensure_staging
from projections.fold import plan_batch
from projections.read_model_ddl import TABLES
from projections.rows import Purge
from tests.unit.projections.factory import Member, history, recovery, sleep_deleted

ALICE = Member(640001)


def _final_columns(table: str) -> list[str]:
    """The columns of ``table`` as its DDL declares them."""
    ddl = next(statement for statement in TABLES if re.search(rf"CREATE TABLE {table} \(", statement))
    body = ddl[ddl.index("(") + 1 : ddl.rindex(")")]
    return [
        line.split()[0] for line in body.splitlines() if line.strip() and not line.strip().startswith("--")
    ]


@pytest.mark.parametrize("table", BASE_TABLES, ids=lambda t: t.name)
def test_staged_and_computed_columns_are_the_final_tables_columns(table: BaseTable) -> None:
    assert sorted([*table.columns, *table.computed]) == sorted(_final_columns(table.name))


def test_a_batch_stages_its_reduced_changes_table_by_table() -> None:
    day = history(ALICE, 1)[0]
    gone_at = day.sleep.whoop_updated_at + timedelta(hours=1)
    newer = recovery(ALICE, day.recovery.cycle_id, day.sleep.sleep_id, gone_at, score=3.0)
    changes = plan_batch(
        [
            *day.records(),
            newer,
            sleep_deleted(ALICE, day.sleep.sleep_id, gone_at),
            Purge(ALICE.user_id, "cycle", str(day.cycle.cycle_id)),
        ]
    )
    staged = {table: (columns, rows) for table, columns, rows in staged_rows(changes)}
    assert "bulk_rm_cycles" not in staged  # erased later in the batch: only the erasure is staged
    sleeps = staged.get("bulk_rm_sleeps", ((), []))[1]  # a nap may be left
    assert [row for row in sleeps if row[1] == day.sleep.sleep_id] == []  # deleted later in the batch
    columns, rows = staged["bulk_rm_recoveries"]
    assert len(rows) == 1 and rows[0][columns.index("recovery_score_pct")] == 3.0
    assert staged["bulk_deletes"][1] == [
        ("sleep", ALICE.user_id, day.sleep.sleep_id, gone_at, day.sleep.normalizer_version)
    ]
    assert staged["bulk_purges"][1] == [("cycle", ALICE.user_id, str(day.cycle.cycle_id))]
    (status,) = staged["bulk_status"][1]
    assert status[0] == ALICE.user_id and status[1] == ALICE.whoop_user_id
    assert status[-1] == len(day.records()) + 3
    assert staged_rows(plan_batch([])) == []


def test_staging_is_unlogged_unless_asked_and_created_under_a_lock() -> None:
    unlogged, logged = ensure_staging(unlogged=True), ensure_staging(unlogged=False)
    assert unlogged.count("CREATE UNLOGGED TABLE") == len(BASE_TABLES) + 4
    assert "UNLOGGED" not in logged
    assert "CREATE TABLE bulk_batches (" in unlogged  # the logged count of batches, always logged
    assert "pg_advisory_xact_lock" in unlogged


def test_memory_settings_are_checked() -> None:
    BulkStore(work_mem="64MB", maintenance_work_mem="1 GB")
    with pytest.raises(ValueError, match="not a memory setting"):
        BulkStore(maintenance_work_mem="1GB'; DROP TABLE x; --")
