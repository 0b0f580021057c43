"""The SQL of the read models, built once from the column lists of ``projections.columns``.

Batches are written as one statement per table and kind of change: the upserted rows are first
copied (COPY, binary) into a staging table of the session (``ON COMMIT DELETE ROWS``) and merged
from there; keys of deletions and erasures come as column arrays (``unnest``). No per-row round
trips. Lookups of other tables go through ``LATERAL ... LIMIT 1`` on their primary key, so a large
batch never makes the planner scan a whole table. Every statement gates on versions, so applying a
batch twice, or an older version after a newer one, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .columns import CYCLE_COLUMNS, RECOVERY_COLUMNS, SLEEP_COLUMNS, SLEEP_MS_COLUMNS, WORKOUT_COLUMNS

__all__ = [
    "ACTIVITY_UPSERT",
    "CREATE_STAGES",
    "DAILY_DELETE",
    "DAILY_INSERT",
    "RECOVERY_DERIVE",
    "STATUS_UPSERT",
    "TABLES",
    "Table",
]

_TYPES = {
    "user_id": "text",
    "cycle_id": "bigint",
    "sleep_id": "text",
    "workout_id": "text",
    "whoop_user_id": "bigint",
    "version": "timestamptz",
    "normalizer_version": "bigint",
    "score_state": "text",
    "start_at": "timestamptz",
    "end_at": "timestamptz",
    "timezone_offset": "text",
    "local_date": "date",
    "created_at": "timestamptz",
    "nap": "boolean",
    "user_calibrating": "boolean",
    "sport_name": "text",
    "sport_id": "bigint",
    "average_heart_rate_bpm": "bigint",
    "max_heart_rate_bpm": "bigint",
    "sleep_cycle_count": "bigint",
    "disturbance_count": "bigint",
    "zone_ms": "text",  # '{a,b,c,d,e,f}': unnest would flatten a two-dimensional bigint array
    "document": "json",
}
_CASTS = {"zone_ms": "s.zone_ms::bigint[]"}


# The sleep and the cycle of a recovery ``r``: one primary-key lookup each (LIMIT 1 keeps the planner
# from turning them into joins that scan the whole table, which a large batch would make it choose).
_SLEEP_OF = (
    "LEFT JOIN LATERAL (SELECT x.start_at, x.end_at, x.local_date FROM rm_sleeps x"
    " WHERE x.user_id = {r}.user_id AND x.sleep_id = {r}.sleep_id LIMIT 1) sl ON true"
)
_CYCLE_OF = (
    "LEFT JOIN LATERAL (SELECT x.start_at, x.local_date FROM rm_cycles x"
    " WHERE x.user_id = {r}.user_id AND x.cycle_id = {r}.cycle_id LIMIT 1) cy ON true"
)


def _type(column: str) -> str:
    if column in _TYPES:
        return _TYPES[column]
    return "bigint" if column in SLEEP_MS_COLUMNS else "double precision"


@dataclass(frozen=True)
class Table:
    """One base table: its name, resource type, id column and the statements that write it."""

    name: str
    resource_type: str
    id_column: str
    id_type: str
    columns: tuple[str, ...]
    date_column: str
    upsert: str
    stage: str
    create_stage: str
    delete: str
    purge: str

    @property
    def arity(self) -> int:
        return len(self.columns)


def _upsert(name: str, resource_type: str, id_column: str, columns: tuple[str, ...], date_column: str) -> str:
    names = ", ".join(columns)
    selected = ", ".join(_CASTS.get(c, f"s.{c}") for c in columns)
    insert_columns = names
    joins = ""
    updated = [c for c in columns if c not in ("user_id", id_column)]
    if name == "rm_recoveries":  # the derived columns, from the sleep and cycle as they are now
        insert_columns += ", start_at, end_at, day"
        selected += (
            ", COALESCE(sl.start_at, cy.start_at, s.created_at), sl.end_at,"
            " COALESCE(s.local_date, sl.local_date, cy.local_date)"
        )
        joins = f" {_SLEEP_OF.format(r='s')} {_CYCLE_OF.format(r='s')}"
        updated += ["start_at", "end_at", "day"]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
    return f"""
WITH s AS MATERIALIZED (SELECT * FROM {_stage(name)}),
old AS (
    SELECT t.user_id, t.{id_column}, t.{date_column} AS day
    FROM {name} t JOIN s ON t.user_id = s.user_id AND t.{id_column} = s.{id_column}
),
up AS (
    INSERT INTO {name} AS t ({insert_columns})
    SELECT {selected} FROM s{joins}
    WHERE NOT EXISTS (
        SELECT 1 FROM rm_tombstones d
        WHERE d.user_id = s.user_id AND d.resource_type = '{resource_type}'
          AND d.resource_id = s.{id_column}::text
          AND (d.version, d.normalizer_version) >= (s.version, s.normalizer_version)
    )
    ON CONFLICT (user_id, {id_column}) DO UPDATE SET {updates}
    WHERE (EXCLUDED.version, EXCLUDED.normalizer_version) > (t.version, t.normalizer_version)
    RETURNING t.user_id, t.{id_column}, t.{date_column} AS day
)
SELECT user_id, {id_column}::text AS id, day FROM up
UNION
SELECT old.user_id, old.{id_column}::text, old.day
FROM old JOIN up ON old.user_id = up.user_id AND old.{id_column} = up.{id_column}
"""  # noqa: S608 - names and types come from this module's constants, values are parameters


def _stage(name: str) -> str:
    return f"stage_{name}"


def _create_stage(name: str, columns: tuple[str, ...]) -> str:
    """The session's staging table of ``name``: a batch's rows are copied in, merged, dropped at commit."""
    definition = ", ".join(f"{c} {_type(c)}" for c in columns)
    return f"CREATE TEMP TABLE IF NOT EXISTS {_stage(name)} ({definition}) ON COMMIT DELETE ROWS"


def _delete(name: str, resource_type: str, id_column: str, id_type: str, date_column: str) -> str:
    return f"""
WITH k AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[])
        AS k(user_id, resource_id, version, normalizer_version)
),
tomb AS (
    INSERT INTO rm_tombstones AS d (user_id, resource_type, resource_id, version, normalizer_version)
    SELECT user_id, '{resource_type}', resource_id, version, normalizer_version FROM k
    ON CONFLICT (user_id, resource_type, resource_id) DO UPDATE
        SET version = EXCLUDED.version, normalizer_version = EXCLUDED.normalizer_version
        WHERE (EXCLUDED.version, EXCLUDED.normalizer_version) > (d.version, d.normalizer_version)
)
DELETE FROM {name} t USING k
WHERE t.user_id = k.user_id AND t.{id_column} = k.resource_id::{id_type}
  AND (t.version, t.normalizer_version) <= (k.version, k.normalizer_version)
RETURNING t.user_id, t.{date_column} AS day
"""  # noqa: S608 - names and types come from this module's constants, values are parameters


def _purge(name: str, resource_type: str, id_column: str, id_type: str, date_column: str) -> str:
    return f"""
WITH k AS (SELECT * FROM unnest($1::text[], $2::text[]) AS k(user_id, resource_id)),
tomb AS (
    DELETE FROM rm_tombstones d USING k
    WHERE d.user_id = k.user_id AND d.resource_type = '{resource_type}' AND d.resource_id = k.resource_id
)
DELETE FROM {name} t USING k
WHERE t.user_id = k.user_id AND t.{id_column} = k.resource_id::{id_type}
RETURNING t.user_id, t.{date_column} AS day
"""  # noqa: S608 - names and types come from this module's constants, values are parameters


def _table(
    name: str, resource_type: str, id_column: str, id_type: str, columns: tuple[str, ...], date_column: str
) -> Table:
    return Table(
        name=name,
        resource_type=resource_type,
        id_column=id_column,
        id_type=id_type,
        columns=columns,
        date_column=date_column,
        upsert=_upsert(name, resource_type, id_column, columns, date_column),
        stage=_stage(name),
        create_stage=_create_stage(name, columns),
        delete=_delete(name, resource_type, id_column, id_type, date_column),
        purge=_purge(name, resource_type, id_column, id_type, date_column),
    )


TABLES: dict[str, Table] = {
    "cycle": _table("rm_cycles", "cycle", "cycle_id", "bigint", CYCLE_COLUMNS, "local_date"),
    "sleep": _table("rm_sleeps", "sleep", "sleep_id", "text", SLEEP_COLUMNS, "local_date"),
    "recovery": _table("rm_recoveries", "recovery", "cycle_id", "bigint", RECOVERY_COLUMNS, "day"),
    "workout": _table("rm_workouts", "workout", "workout_id", "text", WORKOUT_COLUMNS, "local_date"),
}

CREATE_STAGES = ";\n".join(table.create_stage for table in TABLES.values())
"""The session's staging tables, one per base table (``IF NOT EXISTS``: cheap once they exist)."""

# The derived columns of the recoveries whose sleep or cycle a batch touched (a recovery in the batch got
# them when it was written); only the rows whose values change are updated, with their old and new day.
RECOVERY_DERIVE = f"""
WITH touched AS (
    SELECT r.user_id, r.cycle_id
    FROM unnest($1::text[], $2::text[]) AS s(user_id, sleep_id)
    CROSS JOIN LATERAL (
        SELECT x.user_id, x.cycle_id FROM rm_recoveries x
        WHERE x.user_id = s.user_id AND x.sleep_id = s.sleep_id OFFSET 0
    ) r
    UNION
    SELECT r.user_id, r.cycle_id
    FROM unnest($3::text[], $4::bigint[]) AS c(user_id, cycle_id)
    CROSS JOIN LATERAL (
        SELECT x.user_id, x.cycle_id FROM rm_recoveries x
        WHERE x.user_id = c.user_id AND x.cycle_id = c.cycle_id LIMIT 1
    ) r
),
keys AS (  -- the recoveries this batch wrote got their derived columns then, from the same state
    SELECT user_id, cycle_id FROM touched
    EXCEPT
    SELECT * FROM unnest($5::text[], $6::bigint[])
),
derived AS (
    SELECT r.user_id, r.cycle_id, r.day AS old_day,
           COALESCE(sl.start_at, cy.start_at, r.created_at) AS start_at,
           sl.end_at AS end_at,
           COALESCE(r.local_date, sl.local_date, cy.local_date) AS day
    FROM keys
    CROSS JOIN LATERAL (
        SELECT x.user_id, x.cycle_id, x.sleep_id, x.day, x.created_at, x.local_date FROM rm_recoveries x
        WHERE x.user_id = keys.user_id AND x.cycle_id = keys.cycle_id LIMIT 1
    ) r
    {_SLEEP_OF.format(r="r")}
    {_CYCLE_OF.format(r="r")}
)
UPDATE rm_recoveries t SET start_at = d.start_at, end_at = d.end_at, day = d.day
FROM derived d
WHERE t.user_id = d.user_id AND t.cycle_id = d.cycle_id
  AND (t.start_at, t.end_at, t.day) IS DISTINCT FROM (d.start_at, d.end_at, d.day)
RETURNING t.user_id, d.old_day, t.day
"""  # noqa: S608 - the fragments are this module's constants, values are parameters

DAILY_DELETE = """
DELETE FROM rm_daily_summaries s USING unnest($1::text[], $2::date[]) AS d(user_id, local_date)
WHERE s.user_id = d.user_id AND s.local_date = d.local_date
"""

DAILY_INSERT = """
INSERT INTO rm_daily_summaries (
    user_id, local_date, recovery_cycle_id, recovery_score_pct, hrv_rmssd_ms, resting_heart_rate_bpm,
    spo2_pct, skin_temp_c, sleep_id, sleep_performance_pct, sleep_duration_ms, in_bed_ms, nap_count,
    nap_duration_ms, cycle_id, day_strain, energy_kcal, workout_count
)
SELECT d.user_id, d.local_date, r.cycle_id, r.recovery_score_pct, r.hrv_rmssd_ms, r.resting_heart_rate_bpm,
       r.spo2_pct, r.skin_temp_c, s.sleep_id, s.performance_pct, s.asleep_ms, s.in_bed_ms, n.nap_count,
       n.nap_ms, c.cycle_id, c.strain, c.energy_kcal, w.workout_count
FROM (SELECT DISTINCT user_id, local_date FROM unnest($1::text[], $2::date[]) AS d(user_id, local_date)) d
LEFT JOIN LATERAL (
    SELECT x.cycle_id, x.recovery_score_pct, x.hrv_rmssd_ms, x.resting_heart_rate_bpm, x.spo2_pct,
           x.skin_temp_c
    FROM rm_recoveries x WHERE x.user_id = d.user_id AND x.day = d.local_date
    ORDER BY x.start_at DESC, x.cycle_id DESC LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT x.sleep_id, x.performance_pct, x.asleep_ms, x.in_bed_ms
    FROM rm_sleeps x WHERE x.user_id = d.user_id AND x.local_date = d.local_date AND NOT x.nap
    ORDER BY x.start_at DESC, x.sleep_id DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS nap_count, sum(x.asleep_ms)::bigint AS nap_ms
    FROM rm_sleeps x WHERE x.user_id = d.user_id AND x.local_date = d.local_date AND x.nap
) n ON true
LEFT JOIN LATERAL (
    SELECT x.cycle_id, x.strain, x.energy_kcal
    FROM rm_cycles x WHERE x.user_id = d.user_id AND x.local_date = d.local_date
    ORDER BY x.start_at DESC, x.cycle_id DESC LIMIT 1
) c ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS workout_count
    FROM rm_workouts x WHERE x.user_id = d.user_id AND x.local_date = d.local_date
) w ON true
WHERE r.cycle_id IS NOT NULL OR s.sleep_id IS NOT NULL OR n.nap_count > 0 OR c.cycle_id IS NOT NULL
   OR w.workout_count > 0
"""

STATUS_UPSERT = """
INSERT INTO rm_sync_status AS t
    (user_id, whoop_user_id, last_record_at, last_whoop_update_at, records_applied)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], $5::bigint[])
ON CONFLICT (user_id) DO UPDATE SET
    whoop_user_id = COALESCE(EXCLUDED.whoop_user_id, t.whoop_user_id),
    last_record_at = GREATEST(t.last_record_at, EXCLUDED.last_record_at),
    last_whoop_update_at = GREATEST(t.last_whoop_update_at, EXCLUDED.last_whoop_update_at),
    records_applied = t.records_applied + EXCLUDED.records_applied
"""

ACTIVITY_UPSERT = """
INSERT INTO rm_sync_activity AS t (user_id, last_webhook_at, last_fetch_at, webhooks_seen, documents_seen)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], $5::bigint[])
ON CONFLICT (user_id) DO UPDATE SET
    last_webhook_at = GREATEST(t.last_webhook_at, EXCLUDED.last_webhook_at),
    last_fetch_at = GREATEST(t.last_fetch_at, EXCLUDED.last_fetch_at),
    webhooks_seen = t.webhooks_seen + EXCLUDED.webhooks_seen,
    documents_seen = t.documents_seen + EXCLUDED.documents_seen
"""
