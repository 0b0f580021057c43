"""``python -m ingest vault rotate`` before it touches a row: usage, refusals, an unreachable database.

The rotation itself runs on real PostgreSQL in ``tests/integration/ingest/test_vault_pg.py``.
"""

from __future__ import annotations

import pytest

from infra.rewrap import RewrapReport, summary_line
from infra.vault import DEV_VAULT_KEYS, Keyring
from ingest.__main__ import main

OWN = Keyring.generate_item("k2")
UNREACHABLE = "postgresql://whoop:s3cret-pw@127.0.0.1:1/whoop"  # port 1: nothing listens


@pytest.mark.parametrize("args", [["vault"], ["vault", "rotate", "now"], ["vault", "spin"]])
def test_bad_usage_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert capsys.readouterr().err == "usage: python -m ingest vault rotate\n"


def test_an_unreachable_database_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("TOKEN_VAULT_KEYS", OWN)
    assert main(["vault", "rotate"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("python -m ingest vault rotate: PostgreSQL (DATABASE_URL) unreachable")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "s3cret-pw" not in err and "whoop@" not in err


def test_sealing_with_the_public_key_is_refused_in_production_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("PIPELINE_ENV", "production")
    monkeypatch.setenv("TOKEN_VAULT_KEYS", f"{DEV_VAULT_KEYS},{OWN}")
    assert main(["vault", "rotate"]) == 2  # 2, not 1: it never tried the database
    err = capsys.readouterr().err
    assert "TOKEN_VAULT_KEYS seals with the public development key" in err and err.count("\n") == 1
    assert DEV_VAULT_KEYS.partition(":")[2] not in err


def test_the_public_key_as_an_older_key_is_accepted_in_production(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # rotating is how a deployment leaves the public key: the check passes, the database is tried
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("PIPELINE_ENV", "production")
    monkeypatch.setenv("TOKEN_VAULT_KEYS", f"{OWN},{DEV_VAULT_KEYS}")
    assert main(["vault", "rotate"]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_a_bad_keyring_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKEN_VAULT_KEYS", "k1:c2VjcmV0LXZhbHVl")
    assert main(["vault", "rotate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m ingest vault rotate: bad setting: TOKEN_VAULT_KEYS: ")
    assert err.count("\n") == 1 and "c2VjcmV0LXZhbHVl" not in err


def test_the_summary_line_holds_counts_and_the_key_id_only() -> None:
    assert summary_line("whoop_tokens", "k2", RewrapReport(moved=3, current=2)) == (
        "whoop_tokens: 3 moved to key 'k2', 2 already under it, 0 do not open"
    )
    pending = summary_line("whoop_tokens", "k2", RewrapReport(unopenable=1, pending=2))
    assert pending.endswith(
        "1 do not open, 2 still under an older key (locked or written meanwhile: run again)"
    )
    assert RewrapReport(moved=3, current=2).complete
    assert not RewrapReport(unopenable=1).complete and not RewrapReport(pending=1).complete
