"""Configuration of the projection worker and the query API, read once from the environment in ``__main__``.

:class:`ProjectionsSettings` holds this stage's own knobs (``PROJECTIONS_*``); :class:`Settings`
bundles them with the shared Kafka and PostgreSQL settings. Admin tokens are configured as hashes
(``label:sha256hex:scope+scope``, the format of ``INGEST_ADMIN_TOKENS``), never as plaintext. A
missing or bad value fails start-up with the variable named (pydantic-settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from infra import settings as shared
from infra.admin_token_settings import AdminTokenSettings
from infra.admin_tokens import AdminToken
from infra.http_limits import HttpServerSettings
from infra.settings import CsvItems, KafkaSettings, PostgresSettings, SettingsBundle
from infra.vault import VaultSettings

__all__ = ["ADMIN_SCOPES", "AdminToken", "ProjectionsSettings", "Settings", "parse_admin_tokens"]

ADMIN_SCOPES = frozenset({"read", "status"})
"""``read``: any member's data and sync status; ``status``: any member's sync status only."""


class ProjectionsSettings(AdminTokenSettings, HttpServerSettings):
    """The projection stage's own configuration (prefix ``PROJECTIONS_``)."""

    model_config = SettingsConfigDict(env_prefix="PROJECTIONS_")
    admin_scopes: ClassVar[frozenset[str]] = ADMIN_SCOPES

    log_level: str = shared.log_level_field("projections")
    group_id: str = Field(
        default="projections.read-models.v1",
        min_length=1,
        description="Consumer group of the read-model projection; its offsets live in consumer_offsets.",
    )
    records_topic: str = Field(default="wear.records.v1", description="Topic of canonical records.")
    activity_topics: CsvItems = Field(
        default=("whoop.webhooks.v1", "whoop.documents.v1"),
        description="Comma-separated topics whose arrivals feed the sync status (last webhook, last fetch); "
        "empty disables that projection.",
    )
    activity_group_id: str = Field(
        default="projections.sync-activity.v1",
        min_length=1,
        description="Consumer group of the sync-activity projection (webhooks and fetches per member).",
    )
    group_instance_id: str | None = Field(
        default=None,
        min_length=1,
        description="Static group membership id (e.g. the pod name of a StatefulSet): a restarted worker "
        "takes its partitions back at once instead of waiting for a rebalance. Unset: dynamic membership.",
    )
    session_timeout_ms: int = shared.count_field(
        10_000,
        "Kafka session.timeout.ms of the projection consumers: how long a dead worker keeps its partitions.",
        least=6_000,
        most=300_000,
    )
    batch_max_records: int = shared.count_field(
        5000, "Most records applied in one PostgreSQL transaction.", most=100_000
    )
    poll_timeout_ms: int = shared.count_field(
        200, "Longest wait of one Kafka poll for new records, ms.", most=10_000
    )
    fetch_max_bytes: int = shared.count_field(
        52_428_800,
        "Kafka fetch.max.bytes of the projection consumer (large: rebuilds read fast).",
        least=1_048_576,
    )
    max_partition_fetch_bytes: int = shared.count_field(
        8_388_608, "Kafka max.partition.fetch.bytes of the projection consumer.", least=65_536
    )
    retry_backoff_s: float = shared.seconds_field(
        1.0, "Wait before retrying a batch after PostgreSQL or Kafka failed (doubles up to 30 s).", most=60
    )
    db_pool_size: int = shared.pool_size_field()
    serve_api: bool = Field(
        default=False,
        description="Also serve the query API from `python -m projections` on PROJECTIONS_API_HOST:PORT "
        "(standalone, e.g. for benchmarks; in production the HTTP edge on :8000 mounts it).",
    )
    api_host: str = shared.host_field("Interface of the standalone query API.")
    api_port: int = shared.port_field(8002, "TCP port of the standalone query API.")
    metrics_host: str = shared.host_field(
        "Interface of the workers' ops server (/metrics, /healthz, /readyz)."
    )
    metrics_port: int = shared.port_field(
        9102, "TCP port of the workers' ops server (0: any free port, logged)."
    )
    admin_tokens: CsvItems = Field(
        default=(),
        description="Comma-separated admin tokens as 'label:sha256hex:scope+scope' (scopes: read, status); "
        "only hashes are configured. `python -m projections admin-token LABEL SCOPES` makes one.",
    )
    auth_cache_s: float = shared.seconds_field(
        2.0,
        "How long a token lookup is remembered in-process, seconds (0: never). A revoked "
        "token stops working at most this long after revocation.",
        least=0,
        most=60,
    )
    rate_per_s: float = Field(
        default=20.0,
        ge=0,
        description="Requests per second allowed per token (token bucket; 0 disables); over it: 429.",
    )
    rate_burst: int = shared.count_field(40, "Burst size of the per-token rate limit.")
    metrics_max_days: int = shared.count_field(
        92, "Widest start..end window of GET /v1/data/{user_id}/metrics, days; wider: 400.", most=3660
    )
    statement_timeout_s: float = shared.seconds_field(
        5.0, "Longest query of the API before it answers 503, seconds.", most=120
    )
    retry_after_s: int = shared.retry_after_field(2, "a 503 or a 429")
    auth_failures_max: int = shared.auth_failures_max_field("PROJECTIONS_")
    auth_failure_window_s: float = shared.auth_failure_window_field("PROJECTIONS_")
    readyz_cache_s: float = shared.readyz_cache_field(
        "/readyz result of the standalone query API (PostgreSQL checked)"
    )


def parse_admin_tokens(items: tuple[str, ...]) -> tuple[AdminToken, ...]:
    """Parse ``PROJECTIONS_ADMIN_TOKENS`` items; raise ValueError naming the bad item (never its hash)."""
    return ProjectionsSettings.parse_admin_tokens(items)


@dataclass(frozen=True)
class Settings(SettingsBundle):
    """Everything the projections process reads, bundled (``Settings.from_env()`` reads every part)."""

    projections: ProjectionsSettings
    kafka: KafkaSettings
    postgres: PostgresSettings
    vault: VaultSettings = field(default_factory=VaultSettings)  # opens sealed records (ADR 0004)
