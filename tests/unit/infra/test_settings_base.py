"""The shared settings plumbing: comma-separated fields, admin tokens, bundles read from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from infra.admin_token_settings import AdminTokenSettings
from infra.settings import CsvItems, KafkaSettings, ServiceSettings, SettingsBundle
from infra.vault import hash_token

HASH = hash_token("wpa_example")


class _Demo(AdminTokenSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")
    admin_scopes: ClassVar[frozenset[str]] = frozenset({"read", "write"})

    names: CsvItems = Field(default=("a",), description="Names.")
    admin_tokens: CsvItems = Field(default=(), description="Admin tokens.")


class _Other(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OTHER_")

    size: int = Field(default=1, description="A size.")


@dataclass(frozen=True)
class _Bundle(SettingsBundle):
    demo: _Demo
    other: _Other
    kafka: KafkaSettings


def test_csv_items_are_split_stripped_and_empty_items_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_NAMES", " x, y ,,z,")
    assert _Demo().names == ("x", "y", "z")
    monkeypatch.setenv("DEMO_NAMES", "")
    assert _Demo().names == ()


def test_settings_are_frozen_and_ignore_unknown_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTHER_UNKNOWN", "1")
    settings = _Other()
    assert not hasattr(settings, "unknown")
    with pytest.raises(ValueError, match="frozen"):
        settings.size = 2  # type: ignore[misc]


def test_admin_tokens_are_checked_when_read_and_parsed_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ADMIN_TOKENS", f"ops:{HASH}:read+write, support:{HASH}:read")
    assert [(token.label, token.scopes) for token in _Demo().admin()] == [
        ("ops", frozenset({"read", "write"})),
        ("support", frozenset({"read"})),
    ]
    monkeypatch.setenv("DEMO_ADMIN_TOKENS", f"ops:{HASH}:delete")
    with pytest.raises(ValueError, match=r"DEMO_ADMIN_TOKENS item 0 \(ops\): scopes must be among"):
        _Demo()


def test_a_bundle_reads_every_part_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_NAMES", "q")
    monkeypatch.setenv("OTHER_SIZE", "7")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    bundle = _Bundle.from_env()
    assert isinstance(bundle, _Bundle)
    assert (bundle.demo.names, bundle.other.size, bundle.kafka.kafka_bootstrap_servers) == (
        ("q",),
        7,
        "broker:9093",
    )


def test_a_new_admin_token_is_shown_with_the_item_that_configures_its_hash() -> None:
    token, item = _Demo.new_admin_token("ops", "read+write")
    assert token.startswith("wpa_") and item == f"ops:{hash_token(token)}:read+write"
    [parsed] = _Demo.parse_admin_tokens((item,))
    assert parsed.label == "ops" and token not in item
    assert _Demo.admin_tokens_variable() == "DEMO_ADMIN_TOKENS"
    with pytest.raises(ValueError, match="DEMO_ADMIN_TOKENS item 0 \\(ops\\): scopes"):
        _Demo.new_admin_token("ops", "delete")
