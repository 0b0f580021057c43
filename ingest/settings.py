"""Configuration of the ingest edge, read once from the environment in ``__main__``.

:class:`IngestSettings` holds the edge's own knobs (``INGEST_*``, plus ``WHOOP_CLIENT_SECRET_PREVIOUS``
for a webhook-secret rotation); :class:`Settings` bundles them with the shared Kafka, PostgreSQL,
WHOOP-app and vault settings. Every field has a description; ``docs/ingest.md`` lists them all.
A missing or bad value fails start-up with the variable named (pydantic-settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from infra import settings as shared
from infra.admin_token_settings import AdminTokenSettings
from infra.admin_tokens import AdminToken
from infra.http_limits import HttpServerSettings
from infra.settings import CsvItems, KafkaSettings, PostgresSettings, SettingsBundle, WhoopAppSettings
from infra.vault import VaultSettings

__all__ = ["AdminToken", "IngestSettings", "Settings", "parse_admin_tokens"]

ADMIN_SCOPES = frozenset({"pull", "read", "connections"})


class IngestSettings(AdminTokenSettings, HttpServerSettings):
    """The ingest edge's own configuration (prefix ``INGEST_``)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_")
    admin_scopes: ClassVar[frozenset[str]] = ADMIN_SCOPES

    host: str = shared.host_field("Interface the HTTP server binds to.")
    port: int = shared.port_field(8000, "TCP port of the HTTP server.")
    log_level: str = shared.log_level_field("ingest")
    max_body_bytes: int = shared.count_field(
        65_536,
        "Largest webhook or JSON request body accepted; larger ones get 413 (WHOOP's: ~140 B).",
        least=1024,
        most=10_485_760,
    )
    timestamp_tolerance_s: int = shared.seconds_field(
        300, "Accepted skew of X-WHOOP-Signature-Timestamp around our clock, seconds (±).", least=1
    )
    whoop_client_secret_previous: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("WHOOP_CLIENT_SECRET_PREVIOUS", "INGEST_WHOOP_CLIENT_SECRET_PREVIOUS"),
        description="The previous WHOOP client secret, still accepted for webhook signatures during a "
        "rotation; unset otherwise.",
    )
    append_timeout_s: float = shared.seconds_field(
        0.8, "Longest wait for Kafka to acknowledge a webhook append before answering 503.", most=5
    )
    retry_after_s: int = shared.retry_after_field(5, "a 503 (Kafka or WHOOP unavailable)")
    producer_linger_ms: int = shared.count_field(
        5, "Kafka producer linger.ms: batching window of concurrent appends.", least=0, most=100
    )
    webhook_topic: str = Field(default="whoop.webhooks.v1", description="Topic of verified webhooks.")
    connections_topic: str = Field(
        default="whoop.connections.v1", description="Topic of connection lifecycle and backfill events."
    )
    documents_topic: str = Field(
        default="whoop.documents.v1", description="Topic of raw documents (an erasure writes tombstones)."
    )
    erasure_lease_s: float = shared.seconds_field(
        120.0,
        "How long a running erasure job is leased before another process may resume it, seconds.",
        most=3600,
    )
    backfill_days: int = shared.count_field(
        30, "History fetched on connect and by a pull without 'start', days.", most=3650
    )
    pulls_per_day: int = shared.count_field(
        3,
        "Pulls (POST /v1/pull) a member may start in any 24 hours; more get 429 with "
        "Retry-After. Connect-time backfills do not count.",
        most=1000,
    )
    pull_stale_s: int = shared.seconds_field(
        3600,
        "A pull still 'requested' (no fetcher started it) this long after it was recorded no "
        "longer blocks a new one: it is marked failed ('stale'), seconds.",
        least=60,
        most=7 * 86_400,
    )
    oauth_state_ttl_s: int = shared.seconds_field(
        600, "Lifetime of an OAuth state (authorize → callback), seconds.", least=30, most=3600
    )
    exchange_code_ttl_s: int = shared.seconds_field(
        120, "Lifetime of a one-time exchange code of the browser flow, seconds.", least=10, most=900
    )
    require_app_pkce: bool = Field(
        default=False,
        description="Require the app's own PKCE challenge (code_challenge, S256) on authorize; the app then "
        "proves its code_verifier at callback or exchange. Off: a challenge is optional.",
    )
    api_token_ttl_days: int = shared.count_field(
        90, "Lifetime of an API token issued to the app, days (POST /v1/tokens/refresh renews it).", most=3650
    )
    app_return_uris: CsvItems = Field(
        default=("synheart://oauth/complete",),
        description="Comma-separated app deep links the browser callback may redirect to (with a one-time "
        "code, never a token); exact match.",
    )
    admin_tokens: CsvItems = Field(
        default=(),
        description="Comma-separated admin tokens as 'label:sha256hex:scope+scope' (scopes: pull, read, "
        "connections); only hashes are configured. `python -m ingest admin-token LABEL SCOPES` makes one.",
    )
    whoop_timeout_s: float = shared.seconds_field(
        10.0, "Timeout of each HTTP call to WHOOP (token, profile, revoke).", most=60
    )
    db_pool_size: int = shared.pool_size_field()
    auth_failures_max: int = shared.auth_failures_max_field("INGEST_")
    auth_failure_window_s: float = shared.auth_failure_window_field("INGEST_")
    readyz_cache_s: float = shared.readyz_cache_field("/readyz result (Kafka and PostgreSQL checked)")


def parse_admin_tokens(items: tuple[str, ...]) -> tuple[AdminToken, ...]:
    """Parse ``INGEST_ADMIN_TOKENS`` items; raise ValueError naming the bad item (never its hash)."""
    return IngestSettings.parse_admin_tokens(items)


@dataclass(frozen=True)
class Settings(SettingsBundle):
    """Everything the ingest process reads, bundled (``Settings.from_env()`` reads every part)."""

    ingest: IngestSettings
    kafka: KafkaSettings
    postgres: PostgresSettings
    whoop: WhoopAppSettings
    vault: VaultSettings

    def webhook_secrets(self) -> tuple[bytes, ...]:
        """The accepted webhook signing keys: the client secret, then the previous one if set."""
        current = self.whoop.whoop_client_secret.get_secret_value().encode("utf-8")
        previous = self.ingest.whoop_client_secret_previous
        return (current,) if previous is None else (current, previous.get_secret_value().encode("utf-8"))
