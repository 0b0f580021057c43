"""Erasure reaches every table: each table of the migrations with a ``user_id`` column is in MEMBER_TABLES."""

from __future__ import annotations

import re

from infra.migrations import load_migrations
from ingest.erasure import MEMBER_TABLES

# the erasure job itself: its user_id is cleared when the job is done (only the hash stays)
_NOT_MEMBER_DATA = {"erasures"}
_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", re.S)
_ADD = re.compile(r"ALTER TABLE (?:IF EXISTS )?(\w+)\s+ADD COLUMN (?:IF NOT EXISTS )?user_id\b")


def tables_with_user_id() -> set[str]:
    found: set[str] = set()
    for migration in load_migrations():
        for name, body in _CREATE.findall(migration.sql):
            if re.search(r"^\s*user_id\s", body, re.M):
                found.add(name)
        found.update(_ADD.findall(migration.sql))
    return found


def test_every_table_holding_member_rows_is_erased() -> None:
    assert tables_with_user_id() - _NOT_MEMBER_DATA == set(MEMBER_TABLES)


def test_the_check_sees_a_table_that_is_missing() -> None:
    # the parser finds user_id columns at all (a broken regex would make the test above vacuous)
    assert {"rm_sleeps", "whoop_tokens", "member_data_keys"} <= tables_with_user_id()
