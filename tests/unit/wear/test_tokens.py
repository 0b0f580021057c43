"""``wear tokens create|list|revoke``: one front end for the admin tokens of both HTTP stages.

The commands run as processes (they read the stages' variables from their environment, nothing
else); a token made here is checked against what the stages accept: their own parser of
``<PREFIX>ADMIN_TOKENS`` and the hash they compare.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest

from infra.vault import hash_token
from ingest.settings import IngestSettings
from projections.settings import ProjectionsSettings
from wear.tokens_config import new_token, parse_scopes, stage_scopes, without_label


def _wear(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("ADMIN_TOKENS")}
    return subprocess.run(
        [sys.executable, "-m", "wear", "tokens", *args],
        env={**base, "PIPELINE_ENV": "dev", "COLUMNS": "200", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_create_makes_one_token_that_each_stage_accepts_with_its_share_of_the_scopes() -> None:
    made = _json(_wear("create", "nightly", "--scopes", "read+pull+status", "--json"))

    token = made["token"]
    ingest_item = made["items"]["INGEST_ADMIN_TOKENS"]
    query_item = made["items"]["PROJECTIONS_ADMIN_TOKENS"]
    (ingest,) = IngestSettings.parse_admin_tokens((ingest_item,))
    (query,) = ProjectionsSettings.parse_admin_tokens((query_item,))
    assert (ingest.label, ingest.scopes) == ("nightly", frozenset({"pull", "read"}))
    assert (query.label, query.scopes) == ("nightly", frozenset({"read", "status"}))
    assert ingest.token_hash == query.token_hash == hash_token(token)
    assert IngestSettings(admin_tokens=made["values"]["INGEST_ADMIN_TOKENS"]).admin() == (ingest,)


def test_create_in_text_shows_the_token_once_and_positional_scopes_work() -> None:
    done = _wear("create", "ops", "status")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("token (shown once): wpa_")
    token = lines[0].removeprefix("token (shown once): ")
    assert lines[1] == f"PROJECTIONS_ADMIN_TOKENS item: ops:{hash_token(token)}:status"
    assert token not in done.stderr
    assert "INGEST_ADMIN_TOKENS" not in done.stdout  # status is a scope of the query API only


def test_list_shows_labels_scopes_and_hash_prefixes_never_more() -> None:
    made = _json(_wear("create", "ops", "--scopes", "read,connections", "--json"))
    env = {variable: value for variable, value in made["values"].items()}
    full_hash = hash_token(made["token"])

    listed = _json(_wear("list", "--json", **env))
    table = _wear("list", **env)

    assert listed["tokens"] == [
        {
            "stage": "ingest",
            "variable": "INGEST_ADMIN_TOKENS",
            "label": "ops",
            "scopes": ["connections", "read"],
            "hash_prefix": full_hash[:12],
        },
        {
            "stage": "projections",
            "variable": "PROJECTIONS_ADMIN_TOKENS",
            "label": "ops",
            "scopes": ["read"],
            "hash_prefix": full_hash[:12],
        },
    ]
    assert "2 admin tokens configured" in table.stdout
    for output in (table.stdout, str(listed)):
        assert made["token"] not in output
        assert full_hash not in output


def test_revoke_prints_each_variable_without_the_label() -> None:
    ops = _json(_wear("create", "ops", "--scopes", "read", "--json"))["items"]
    env = {"INGEST_ADMIN_TOKENS": ops["INGEST_ADMIN_TOKENS"]}
    ci = _json(_wear("create", "ci", "--scopes", "pull", "--stage", "ingest", "--json", **env))
    env = {**ci["values"], "PROJECTIONS_ADMIN_TOKENS": ops["PROJECTIONS_ADMIN_TOKENS"]}

    revoked = _json(_wear("revoke", "ops", "--json", **env))
    text = _wear("revoke", "ops", "--stage", "projections", **env)

    assert revoked == {
        "label": "ops",
        "values": {"INGEST_ADMIN_TOKENS": ci["items"]["INGEST_ADMIN_TOKENS"], "PROJECTIONS_ADMIN_TOKENS": ""},
    }
    assert text.stdout.strip() == "PROJECTIONS_ADMIN_TOKENS="


@pytest.mark.parametrize(
    ("args", "env", "reason"),
    [
        (["create", "ops", "--scopes", "admin"], {}, "scope 'admin' is not a scope of any stage"),
        (
            ["create", "ops", "--scopes", "pull", "--stage", "projections"],
            {},
            "not a scope of the projections",
        ),
        (["create", "a:b", "read"], {}, "bad label 'a:b'"),
        (["create", "ops"], {}, "no scope given"),
        (["create", "ops", "read"], {"INGEST_ADMIN_TOKENS": f"ops:{'a' * 64}:read"}, "already has a token"),
        (["revoke", "nobody"], {}, "no admin token labelled 'nobody'"),
        (["list"], {"PROJECTIONS_ADMIN_TOKENS": "garbage"}, "PROJECTIONS_ADMIN_TOKENS item 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], env: dict[str, str], reason: str) -> None:
    done = _wear(*args, **env)

    assert done.returncode == 2
    line = _one_error_line(done)
    assert reason in line
    assert "wpa_" not in done.stdout + done.stderr  # no token made on a refusal


def test_pure_parts() -> None:
    assert parse_scopes(["read+pull", "status, read"]) == ("pull", "read", "status")
    assert stage_scopes(("read",), None) == {"ingest": ("read",), "projections": ("read",)}
    assert stage_scopes(("connections",), None) == {"ingest": ("connections",)}
    made = new_token("x", {"projections": ("status",)}, {"projections": ("y:" + "b" * 64 + ":read",)})
    assert (
        made.values["PROJECTIONS_ADMIN_TOKENS"]
        == f"y:{'b' * 64}:read,{made.items['PROJECTIONS_ADMIN_TOKENS']}"
    )
    assert without_label("y", {"projections": (f"y:{'b' * 64}:read",)}, None) == {
        "PROJECTIONS_ADMIN_TOKENS": ""
    }
