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

    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port of the HTTP server.")
    log_level: str = Field(default="INFO", description="Python logging level of the ingest process.")
    max_body_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=10_485_760,
        description="Largest webhook or JSON request body accepted; larger ones get 413 (WHOOP's: ~140 B).",
    )
    timestamp_tolerance_s: int = Field(
        default=300,
        ge=1,
        description="Accepted skew of X-WHOOP-Signature-Timestamp around our clock, seconds (±).",
    )
    whoop_client_secret_previous: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("WHOOP_CLIENT_SECRET_PREVIOUS", "INGEST_WHOOP_CLIENT_SECRET_PREVIOUS"),
        description="The previous WHOOP client secret, still accepted for webhook signatures during a "
        "rotation; unset otherwise.",
    )
    append_timeout_s: float = Field(
        default=0.8,
        gt=0,
        le=5,
        description="Longest wait for Kafka to acknowledge a webhook append before answering 503.",
    )
    retry_after_s: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="Retry-After seconds sent with a 503 (Kafka or WHOOP unavailable).",
    )
    producer_linger_ms: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Kafka producer linger.ms: batching window of concurrent appends.",
    )
    webhook_topic: str = Field(default="whoop.webhooks.v1", description="Topic of verified webhooks.")
    connections_topic: str = Field(
        default="whoop.connections.v1", description="Topic of connection lifecycle and backfill events."
    )
    documents_topic: str = Field(
        default="whoop.documents.v1", description="Topic of raw documents (an erasure writes tombstones)."
    )
    erasure_lease_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="How long a running erasure job is leased before another process may resume it, seconds.",
    )
    backfill_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="History fetched on connect and by a pull without 'start', days.",
    )
    pulls_per_day: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Pulls (POST /v1/pull) a member may start in any 24 hours; more get 429 with "
        "Retry-After. Connect-time backfills do not count.",
    )
    pull_stale_s: int = Field(
        default=3600,
        ge=60,
        le=7 * 86_400,
        description="A pull still 'requested' (no fetcher started it) this long after it was recorded no "
        "longer blocks a new one: it is marked failed ('stale'), seconds.",
    )
    oauth_state_ttl_s: int = Field(
        default=600, ge=30, le=3600, description="Lifetime of an OAuth state (authorize → callback), seconds."
    )
    exchange_code_ttl_s: int = Field(
        default=120,
        ge=10,
        le=900,
        description="Lifetime of a one-time exchange code of the browser flow, seconds.",
    )
    require_app_pkce: bool = Field(
        default=False,
        description="Require the app's own PKCE challenge (code_challenge, S256) on authorize; the app then "
        "proves its code_verifier at callback or exchange. Off: a challenge is optional.",
    )
    api_token_ttl_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Lifetime of an API token issued to the app, days (POST /v1/tokens/refresh renews it).",
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
    whoop_timeout_s: float = Field(
        default=10.0, gt=0, le=60, description="Timeout of each HTTP call to WHOOP (token, profile, revoke)."
    )
    db_pool_size: int = Field(default=10, ge=1, le=100, description="Largest PostgreSQL pool size.")
    auth_failures_max: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="Failed bearer authentications (unknown or revoked token) allowed per client address "
        "within INGEST_AUTH_FAILURE_WINDOW_S; beyond, 429 too_many_failed_authentications without a token "
        "lookup (0 disables).",
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, le=86_400, description="Window of INGEST_AUTH_FAILURES_MAX, seconds."
    )
    readyz_cache_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a /readyz result (Kafka and PostgreSQL checked) is reused, seconds (0: never).",
    )


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
