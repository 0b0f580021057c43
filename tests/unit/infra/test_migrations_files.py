"""Migration files are named, ordered and unique; bad folders are refused with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.migrations import MigrationError, load_migrations


def test_the_repository_migrations_load_in_version_order() -> None:
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(versions) and versions[0] == 1
    assert migrations[0].name == "consumer_offsets"


def test_a_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"1_init\.sql"):
        load_migrations(tmp_path)


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="duplicate"):
        load_migrations(tmp_path)


def test_checksum_follows_the_content(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    before = load_migrations(tmp_path)[0].checksum
    (tmp_path / "0001_a.sql").write_text("SELECT 2;")
    assert load_migrations(tmp_path)[0].checksum != before
