"""The SQL of the bulk load (``projections.bulk``): staging tables, and the final tables built from them.

A bulk load appends each batch's reduced changes to staging tables of the version's schema, every
row stamped with its batch's number (``bulk_batch_numbers``, taken after the batch locked its
offsets, so the batches of one partition are numbered in log order). ``finish`` then builds what the
live upserts of ``projections.sql`` would have left, with one set-based statement per table:

- an erasure (Kafka tombstone) forgets what its key staged in earlier batches (its own batch staged
  only what came after it: ``apply.TableChanges.purge``);
- a resource's tombstone is its greatest deletion; its live row is its greatest upsert (an earlier
  batch winning a tie, as ``ON CONFLICT ... WHERE >`` keeps the first) when newer than its tombstone;
- a recovery's window and day come from its sleep and cycle as they end up;
- a daily summary for every (member, local date) with data, by the rules of ``sql.DAILY_INSERT``;
- a member's sync status: the sums, the greatest times, the last known WHOOP user id.

Upserts are staged in tables ``LIKE`` the final ones (same types, collations and NOT NULL, so a value
the final table refuses is refused when its batch is staged, and that batch is dead-lettered record
by record as on the live path), without the columns the final tables compute. Names are unqualified:
``versions.use`` puts the version's schema first in the ``search_path``.
"""

from __future__ import annotations

from .columns import CYCLE_COLUMNS, RECOVERY_COLUMNS, SLEEP_COLUMNS, WORKOUT_COLUMNS

__all__ = [
    "BASE_TABLES",
    "BEGIN_BATCH",
    "DAILY_SUMMARIES",
    "DELETES",
    "DELETE_COLUMNS",
    "DROP_STAGING",
    "FORGET_PURGED",
    "PURGES",
    "PURGE_COLUMNS",
    "STAGED_BATCHES",
    "STATUS",
    "STATUS_COLUMNS",
    "SYNC_STATUS",
    "TOMBSTONES",
    "BaseTable",
    "ensure_staging",
]

DELETES = "bulk_deletes"
DELETE_COLUMNS = ("resource_type", "user_id", "resource_id", "version", "normalizer_version")
PURGES = "bulk_purges"
PURGE_COLUMNS = ("resource_type", "user_id", "resource_id")
STATUS = "bulk_status"
STATUS_COLUMNS = ("user_id", "whoop_user_id", "last_record_at", "last_whoop_update_at", "records")
_SEQUENCE = "bulk_batch_numbers"
_BATCH = f"batch bigint NOT NULL DEFAULT currval('{_SEQUENCE}')"
_QUIET = "WITH (autovacuum_enabled = off)"  # append-only, read once: nothing for autovacuum to do
_LOCK = "'whoop-pipeline:bulk-staging:' || current_schema()"


class BaseTable:
    """One base table of the bulk load: its staging table and the statement that builds it."""

    def __init__(
        self,
        name: str,
        resource_type: str,
        id_column: str,
        columns: tuple[str, ...],
        computed: tuple[str, ...],
        staged_as_text: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.resource_type = resource_type
        self.id_column = id_column
        self.columns = columns  # as staged: ``apply``'s row order
        self.computed = computed  # the final table's own: derived on insert, or generated
        self.stage = f"bulk_{name}"
        # the final table's own columns are dropped; what the row carries as text stays text
        self.create_stage = [
            f"CREATE {{logging}} TABLE {self.stage} ({_BATCH}, LIKE {name}) {_QUIET}",
            *(f"ALTER TABLE {self.stage} DROP COLUMN {column}" for column in computed),
            *(f"ALTER TABLE {self.stage} ALTER COLUMN {column} TYPE text" for column in staged_as_text),
        ]
        self.staged_as_text = staged_as_text
        self.insert = self._insert()
        self.forget_purged = f"""
DELETE FROM {self.stage} s USING ({_LAST_PURGES}) p
WHERE p.resource_type = '{resource_type}' AND p.user_id = s.user_id AND p.resource_id = s.{id_column}::text
  AND s.batch < p.batch
"""  # noqa: S608 - names come from this module's constants

    def _insert(self) -> str:
        names = ", ".join(self.columns)
        selected = ", ".join(
            f"s.{c}::{_FINAL_TYPES[c]}" if c in self.staged_as_text else f"s.{c}" for c in self.columns
        )
        joins = ""
        if self.name == "rm_recoveries":  # the derived columns, from the sleep and cycle as they end up
            names += ", start_at, end_at, day"
            selected += (
                ", COALESCE(sl.start_at, cy.start_at, s.created_at), sl.end_at,"
                " COALESCE(s.local_date, sl.local_date, cy.local_date)"
            )
            joins = (
                " LEFT JOIN rm_sleeps sl ON sl.user_id = s.user_id AND sl.sleep_id = s.sleep_id"
                " LEFT JOIN rm_cycles cy ON cy.user_id = s.user_id AND cy.cycle_id = s.cycle_id"
            )
        key = f"o.user_id = s.user_id AND o.{self.id_column} = s.{self.id_column}"
        return f"""
INSERT INTO {self.name} ({names})
SELECT {selected} FROM {self.stage} s{joins}
WHERE NOT EXISTS (  -- a greater version of the resource, or the same one staged earlier
    SELECT 1 FROM {self.stage} o
    WHERE {key} AND (o.version, o.normalizer_version, s.batch) > (s.version, s.normalizer_version, o.batch)
)
AND NOT EXISTS (  -- a deletion not older than it
    SELECT 1 FROM rm_tombstones d
    WHERE d.user_id = s.user_id AND d.resource_type = '{self.resource_type}'
      AND d.resource_id = s.{self.id_column}::text
      AND (d.version, d.normalizer_version) >= (s.version, s.normalizer_version)
)
"""  # noqa: S608 - names come from this module's constants


_FINAL_TYPES = {"zone_ms": "bigint[]"}  # '{a,b,c,d,e,f}' in the row (as the live path stages it)
_LAST_PURGES = (
    f"SELECT resource_type, user_id, resource_id, max(batch) AS batch FROM {PURGES}"  # noqa: S608 - constants
    " GROUP BY resource_type, user_id, resource_id"
)

BASE_TABLES: tuple[BaseTable, ...] = (  # the recoveries last: they read their sleep and cycle
    BaseTable("rm_cycles", "cycle", "cycle_id", CYCLE_COLUMNS, ("long_span",)),
    BaseTable("rm_sleeps", "sleep", "sleep_id", SLEEP_COLUMNS, ("long_span",)),
    BaseTable("rm_workouts", "workout", "workout_id", WORKOUT_COLUMNS, ("long_span",), ("zone_ms",)),
    BaseTable(
        "rm_recoveries", "recovery", "cycle_id", RECOVERY_COLUMNS, ("start_at", "end_at", "day", "long_span")
    ),
)

_OTHER_STAGING = (
    f"""CREATE {{logging}} TABLE {DELETES} ({_BATCH}, resource_type text NOT NULL, user_id text NOT NULL,
    resource_id text NOT NULL, version timestamptz NOT NULL, normalizer_version bigint NOT NULL) {_QUIET}""",
    f"""CREATE {{logging}} TABLE {PURGES} ({_BATCH}, resource_type text NOT NULL, user_id text NOT NULL,
    resource_id text NOT NULL) {_QUIET}""",
    f"""CREATE {{logging}} TABLE {STATUS} ({_BATCH}, user_id text NOT NULL, whoop_user_id bigint,
    last_record_at timestamptz, last_whoop_update_at timestamptz, records bigint NOT NULL) {_QUIET}""",
    # one row per staged batch, in a logged table and in one like the staging tables: after a crash of
    # PostgreSQL, unlogged tables come back empty while the stored offsets stay (finish checks)
    f"CREATE {{logging}} TABLE bulk_batches_staged ({_BATCH}) {_QUIET}",
    f"CREATE TABLE bulk_batches ({_BATCH}) {_QUIET}",  # created last: it exists, so do the others
)


def ensure_staging(*, unlogged: bool) -> str:
    """The staging tables of the version whose schema is first in the ``search_path``, unless they exist.

    Two workers of one load may start at once: the first takes a transaction lock and creates the
    tables; the second waits for that lock, then finds them.
    """
    logging = "UNLOGGED" if unlogged else ""
    statements = [
        f"CREATE SEQUENCE IF NOT EXISTS {_SEQUENCE}",
        *(s.format(logging=logging) for table in BASE_TABLES for s in table.create_stage),
        *(s.format(logging=logging) for s in _OTHER_STAGING),
    ]
    body = "".join(f"            EXECUTE {_literal(statement)};\n" for statement in statements)
    # pg_class is read with each statement's snapshot (to_regclass would trust the relation cache)
    missing = (
        "NOT EXISTS (SELECT FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        " AND relname = 'bulk_batches')"
    )
    return f"""
DO $bulk$
BEGIN
    IF {missing} THEN
        PERFORM pg_advisory_xact_lock(hashtextextended({_LOCK}, 0));
        IF {missing} THEN
{body}        END IF;
    END IF;
END
$bulk$"""


def _literal(statement: str) -> str:
    return "'" + " ".join(statement.split()).replace("'", "''") + "'"


BEGIN_BATCH = f"""
INSERT INTO bulk_batches VALUES (nextval('{_SEQUENCE}'));
INSERT INTO bulk_batches_staged DEFAULT VALUES
"""  # noqa: S608 - constants
"""Number the batch (the staging rows it copies take that number) and count it, logged and staged."""

STAGED_BATCHES = "SELECT (SELECT count(*) FROM bulk_batches), (SELECT count(*) FROM bulk_batches_staged)"
"""The batches committed and the batches whose staging rows are still there (equal unless lost)."""

FORGET_PURGED = f"""
DELETE FROM {DELETES} s USING ({_LAST_PURGES}) p
WHERE p.resource_type = s.resource_type AND p.user_id = s.user_id AND p.resource_id = s.resource_id
  AND s.batch < p.batch
"""  # noqa: S608 - constants
"""The deletions an erasure of a later batch forgot (each base table has its own ``forget_purged``)."""

TOMBSTONES = f"""
INSERT INTO rm_tombstones (user_id, resource_type, resource_id, version, normalizer_version)
SELECT DISTINCT ON (user_id, resource_type, resource_id)
       user_id, resource_type, resource_id, version, normalizer_version
FROM {DELETES}
ORDER BY user_id, resource_type, resource_id, version DESC, normalizer_version DESC
"""  # noqa: S608 - constants

DAILY_SUMMARIES = """
INSERT INTO rm_daily_summaries (
    user_id, local_date, recovery_cycle_id, recovery_score_pct, hrv_rmssd_ms, resting_heart_rate_bpm,
    spo2_pct, skin_temp_c, sleep_id, sleep_performance_pct, sleep_duration_ms, in_bed_ms, nap_count,
    nap_duration_ms, cycle_id, day_strain, energy_kcal, workout_count
)
SELECT user_id, local_date, r.cycle_id, r.recovery_score_pct, r.hrv_rmssd_ms, r.resting_heart_rate_bpm,
       r.spo2_pct, r.skin_temp_c, s.sleep_id, s.performance_pct, s.asleep_ms, s.in_bed_ms,
       coalesce(n.nap_count, 0), n.nap_ms, c.cycle_id, c.strain, c.energy_kcal, coalesce(w.workout_count, 0)
FROM (
    SELECT DISTINCT ON (user_id, day) user_id, day AS local_date, cycle_id, recovery_score_pct,
           hrv_rmssd_ms, resting_heart_rate_bpm, spo2_pct, skin_temp_c
    FROM rm_recoveries WHERE day IS NOT NULL
    ORDER BY user_id, day, start_at DESC, cycle_id DESC
) r
FULL JOIN (
    SELECT DISTINCT ON (user_id, local_date)
           user_id, local_date, sleep_id, performance_pct, asleep_ms, in_bed_ms
    FROM rm_sleeps WHERE NOT nap
    ORDER BY user_id, local_date, start_at DESC, sleep_id DESC
) s USING (user_id, local_date)
FULL JOIN (
    SELECT user_id, local_date, count(*) AS nap_count, sum(asleep_ms)::bigint AS nap_ms
    FROM rm_sleeps WHERE nap GROUP BY user_id, local_date
) n USING (user_id, local_date)
FULL JOIN (
    SELECT DISTINCT ON (user_id, local_date) user_id, local_date, cycle_id, strain, energy_kcal
    FROM rm_cycles
    ORDER BY user_id, local_date, start_at DESC, cycle_id DESC
) c USING (user_id, local_date)
FULL JOIN (
    SELECT user_id, local_date, count(*) AS workout_count FROM rm_workouts GROUP BY user_id, local_date
) w USING (user_id, local_date)
"""
"""Every (member, local date) with data, summarized as ``sql.DAILY_INSERT`` summarizes one."""

SYNC_STATUS = f"""
INSERT INTO rm_sync_status (user_id, whoop_user_id, last_record_at, last_whoop_update_at, records_applied)
SELECT user_id,
       (array_agg(whoop_user_id ORDER BY batch DESC) FILTER (WHERE whoop_user_id IS NOT NULL))[1],
       max(last_record_at), max(last_whoop_update_at), sum(records)::bigint
FROM {STATUS} GROUP BY user_id
"""  # noqa: S608 - constants

DROP_STAGING = (
    f"DROP TABLE {', '.join(t.stage for t in BASE_TABLES)}, {DELETES}, {PURGES}, {STATUS},"
    f" bulk_batches_staged, bulk_batches; DROP SEQUENCE {_SEQUENCE}"
)
