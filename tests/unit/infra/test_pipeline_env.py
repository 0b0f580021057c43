"""PIPELINE_ENV: the pure check of the public development secrets, and the settings it reads."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from infra.pipeline_env import (
    PipelineEnvSettings,
    SharedSecretsSettings,
    dev_secret_problems,
    refusal_line,
)
from infra.settings import DEV_WHOOP_CLIENT_SECRET
from infra.vault import DEV_VAULT_KEYS, Keyring, VaultSettings

PRODUCTION = PipelineEnvSettings(pipeline_env="production")
DEV = PipelineEnvSettings(pipeline_env="dev")
DEV_KEY = DEV_VAULT_KEYS.partition(":")[2]
OWN = Keyring.generate_item("k2")
DEV_VAULT, DEV_WHOOP = SecretStr(DEV_VAULT_KEYS), SecretStr(DEV_WHOOP_CLIENT_SECRET)


def test_production_is_the_default_and_other_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PIPELINE_ENV")  # the test harness sets dev
    assert PipelineEnvSettings().pipeline_env == "production"
    monkeypatch.setenv("PIPELINE_ENV", "dev")
    assert PipelineEnvSettings().pipeline_env == "dev"
    monkeypatch.setenv("PIPELINE_ENV", "prod")
    with pytest.raises(ValidationError, match="pipeline_env"):
        PipelineEnvSettings()


def test_each_public_secret_is_named_and_no_value_is_shown() -> None:
    problems = dev_secret_problems(PRODUCTION, token_vault_keys=DEV_VAULT, whoop_client_secret=DEV_WHOOP)
    assert problems == [
        "TOKEN_VAULT_KEYS holds the public development key",
        "WHOOP_CLIENT_SECRET is the public development client secret",
    ]
    line = refusal_line("python -m ingest", problems)
    assert line.count("\n") == 1 and line.endswith("\n")
    assert line.startswith("python -m ingest: refusing to start: TOKEN_VAULT_KEYS")
    assert "WHOOP_CLIENT_SECRET" in line and "PIPELINE_ENV=dev" in line
    assert DEV_KEY not in line and DEV_WHOOP_CLIENT_SECRET not in line


def test_the_defaults_are_the_public_values() -> None:
    vault, secret = (
        VaultSettings(token_vault_keys=SecretStr(DEV_VAULT_KEYS)),
        SecretStr(DEV_WHOOP_CLIENT_SECRET),
    )
    assert vault.uses_dev_key
    assert VaultSettings.model_fields["token_vault_keys"].default.get_secret_value() == DEV_VAULT_KEYS
    assert (
        len(
            dev_secret_problems(
                PRODUCTION, token_vault_keys=vault.token_vault_keys, whoop_client_secret=secret
            )
        )
        == 2
    )


def test_dev_allows_them() -> None:
    assert dev_secret_problems(DEV, token_vault_keys=DEV_VAULT, whoop_client_secret=DEV_WHOOP) == []


def test_own_secrets_pass_and_unchecked_variables_are_skipped() -> None:
    own = dev_secret_problems(
        PRODUCTION, token_vault_keys=SecretStr(OWN), whoop_client_secret=SecretStr("ours")
    )
    assert own == []
    assert dev_secret_problems(PRODUCTION) == []
    assert dev_secret_problems(PRODUCTION, whoop_client_secret=SecretStr(DEV_WHOOP_CLIENT_SECRET)) == [
        "WHOOP_CLIENT_SECRET is the public development client secret"
    ]


@pytest.mark.parametrize(
    ("keys", "public"),
    [
        (DEV_VAULT_KEYS, True),
        (f"prod-7:{DEV_KEY}", True),  # the public key under another id is still public
        (f"{OWN},{DEV_VAULT_KEYS}", True),  # as an older key: it still opens rows anyone can open
        ("dev-1:" + base64.urlsafe_b64encode(bytes(range(32))).decode(), False),  # the id alone is a label
        (OWN, False),
        ("k1:not-a-key", False),  # malformed: VaultSettings reports it, naming the variable
    ],
)
def test_the_public_key_is_found_by_its_bytes_anywhere_in_the_keyring(keys: str, public: bool) -> None:
    problems = dev_secret_problems(PRODUCTION, token_vault_keys=SecretStr(keys))
    assert problems == (["TOKEN_VAULT_KEYS holds the public development key"] if public else [])


def test_vault_rotate_accepts_the_public_key_only_as_an_older_key() -> None:
    older = dev_secret_problems(
        PRODUCTION, token_vault_keys=SecretStr(f"{OWN},{DEV_VAULT_KEYS}"), sealing_key_only=True
    )
    assert older == []
    sealing = dev_secret_problems(
        PRODUCTION, token_vault_keys=SecretStr(f"{DEV_VAULT_KEYS},{OWN}"), sealing_key_only=True
    )
    assert sealing == ["TOKEN_VAULT_KEYS seals with the public development key (its first key)"]


def test_keyring_names_the_ids_of_the_public_key() -> None:
    assert Keyring.parse(f"{OWN},prod-7:{DEV_KEY},{DEV_VAULT_KEYS}").dev_key_ids == ("prod-7", "dev-1")
    assert Keyring.parse(OWN).dev_key_ids == ()


def test_shared_secrets_are_none_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKEN_VAULT_KEYS", raising=False)
    monkeypatch.delenv("WHOOP_CLIENT_SECRET", raising=False)
    unset = SharedSecretsSettings()
    assert unset.token_vault_keys is None and unset.whoop_client_secret is None
    monkeypatch.setenv("WHOOP_CLIENT_SECRET", DEV_WHOOP_CLIENT_SECRET)
    assert SharedSecretsSettings().whoop_client_secret == SecretStr(DEV_WHOOP_CLIENT_SECRET)


def test_a_malformed_keyring_is_named_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_VAULT_KEYS", "k1:c2VjcmV0LXZhbHVl")
    with pytest.raises(ValidationError) as caught:
        VaultSettings()
    assert "TOKEN_VAULT_KEYS" in str(caught.value) and "c2VjcmV0LXZhbHVl" not in str(caught.value)


def test_the_public_secret_as_the_previous_webhook_secret_is_refused_too() -> None:
    # a previous secret still verifies webhooks: anyone could sign one with the public value
    problems = dev_secret_problems(PRODUCTION, whoop_client_secret_previous=DEV_WHOOP)
    assert problems == ["WHOOP_CLIENT_SECRET_PREVIOUS is the public development client secret"]
    assert dev_secret_problems(DEV, whoop_client_secret_previous=DEV_WHOOP) == []
