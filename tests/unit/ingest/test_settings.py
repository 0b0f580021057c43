"""The edge's settings: defaults, the environment, admin tokens, the two webhook secrets."""

from __future__ import annotations

import pytest

from infra.settings import DEV_WHOOP_CLIENT_SECRET
from infra.vault import hash_token
from ingest.__main__ import main
from ingest.settings import IngestSettings, Settings, parse_admin_tokens

HASH = hash_token("wpa_example")


def test_defaults() -> None:
    settings = IngestSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.timestamp_tolerance_s == 300 and settings.backfill_days == 30
    assert settings.append_timeout_s < 1.0
    assert (
        settings.webhook_topic == "whoop.webhooks.v1" and settings.connections_topic == "whoop.connections.v1"
    )
    assert all(field.description for field in IngestSettings.model_fields.values())


def test_every_variable_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_PORT", "9001")
    monkeypatch.setenv("INGEST_TIMESTAMP_TOLERANCE_S", "60")
    monkeypatch.setenv("INGEST_APP_RETURN_URIS", "myapp://done, other://x")
    monkeypatch.setenv("INGEST_ADMIN_TOKENS", f"ops:{HASH}:pull+read")
    monkeypatch.setenv("WHOOP_CLIENT_SECRET_PREVIOUS", "old-secret")
    settings = Settings.from_env()
    assert settings.ingest.port == 9001 and settings.ingest.timestamp_tolerance_s == 60
    assert settings.ingest.app_return_uris == ("myapp://done", "other://x")
    [admin] = settings.ingest.admin()
    assert admin.label == "ops" and admin.scopes == {"pull", "read"} and admin.token_hash == HASH
    assert settings.webhook_secrets() == (DEV_WHOOP_CLIENT_SECRET.encode(), b"old-secret")
    assert "old-secret" not in repr(settings)


def test_bad_values_fail_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_APPEND_TIMEOUT_S", "30")
    with pytest.raises(ValueError, match="append_timeout_s"):
        IngestSettings()


@pytest.mark.parametrize(
    "item", ["ops", f"ops:{HASH}", f"ops:{HASH}:admin", "ops:nothex:pull", f":{HASH}:pull"]
)
def test_bad_admin_tokens_are_refused(item: str) -> None:
    with pytest.raises(ValueError, match="INGEST_ADMIN_TOKENS"):
        parse_admin_tokens((item,))


def test_admin_token_command_prints_the_token_once_and_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin-token", "ops", "pull+read"]) == 0
    out = capsys.readouterr().out
    token = out.split("token (shown once): ")[1].split()[0]
    assert f"ops:{hash_token(token)}:pull+read" in out
    assert main(["admin-token", "ops"]) == 2


def test_oauth_hardening_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = IngestSettings()
    assert defaults.api_token_ttl_days == 90 and defaults.require_app_pkce is False
    monkeypatch.setenv("INGEST_API_TOKEN_TTL_DAYS", "7")
    monkeypatch.setenv("INGEST_REQUIRE_APP_PKCE", "true")
    settings = IngestSettings()
    assert settings.api_token_ttl_days == 7 and settings.require_app_pkce is True
    monkeypatch.setenv("INGEST_API_TOKEN_TTL_DAYS", "0")
    with pytest.raises(ValueError, match="api_token_ttl_days"):
        IngestSettings()
