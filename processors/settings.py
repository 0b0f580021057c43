"""Configuration of the processors, read once from the environment in ``__main__``.

:class:`FetcherSettings` holds the fetcher's own knobs (``FETCHER_*``); :class:`ProcessorsSettings`
(``PROCESSORS_*``) the process-wide ones; :class:`Settings` bundles them with the shared Kafka,
PostgreSQL, WHOOP-app and vault settings. Every field has a description; ``docs/processors.md``
lists them all. A missing or bad value fails start-up with the variable named (pydantic-settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from infra import settings as shared
from infra.settings import KafkaSettings, PostgresSettings, ServiceSettings, SettingsBundle, WhoopAppSettings
from infra.vault import VaultSettings

__all__ = ["FetcherSettings", "ProcessorsSettings", "Settings", "parse_schedule"]


def parse_schedule(value: object) -> object:
    """Read ``"600,1800,3600"`` as a tuple of floats (seconds)."""
    if isinstance(value, str):
        return tuple(float(item) for item in value.split(",") if item.strip())
    return value


Schedule = Annotated[tuple[float, ...], NoDecode, BeforeValidator(parse_schedule)]
"""Delays in seconds, read from one comma-separated variable (``"600,1800,3600"``)."""


class FetcherSettings(ServiceSettings):
    """The fetcher's own configuration (prefix ``FETCHER_``)."""

    model_config = SettingsConfigDict(env_prefix="FETCHER_")

    # --- topics and group ---
    webhooks_topic: str = Field(default="whoop.webhooks.v1", description="Topic of verified webhooks.")
    connections_topic: str = Field(
        default="whoop.connections.v1", description="Topic of connection lifecycle and backfill events."
    )
    documents_topic: str = Field(
        default="whoop.documents.v1", description="Topic the fetched WHOOP documents are appended to."
    )
    group_id: str = Field(
        default="fetcher", description="Kafka consumer group (and faust app id) of the fetcher's intake."
    )
    datadir: str = Field(
        default="",
        description="Folder faust may write to (nothing durable: stateless agents); empty: a fresh "
        "temporary folder per process, removed on exit.",
    )

    # --- the shared quota ---
    quota_bucket: str = Field(
        default="whoop",
        description="Name of the shared quota bucket: every fetcher of one WHOOP app must use the same.",
    )
    quota_per_minute: int = shared.count_field(
        100, "WHOOP requests allowed per 60 s, for all fetchers together."
    )
    quota_per_day: int = shared.count_field(
        10_000, "WHOOP requests allowed per 86,400 s, for all fetchers together."
    )
    quota_window_margin_s: float = shared.seconds_field(
        1.0,
        "Added to both windows: absorbs clock skew and network latency between us and WHOOP.",
        least=0,
        most=600,
    )
    quota_reserve_refetch: float = shared.share_field(
        0.05, "Share of each window a pending-score re-fetch leaves free for live webhooks."
    )
    quota_reserve_reconcile: float = shared.share_field(
        0.15, "Share of each window reconciliation leaves free for live webhooks and re-fetches."
    )
    quota_reserve_backfill: float = shared.share_field(
        0.30, "Share of each window backfill leaves free for everything else."
    )

    # --- HTTP ---
    user_agent: str = Field(
        default="whoop-pipeline-fetcher/0.1 (+https://github.com/whoop-pipeline)",
        description="User-Agent of every WHOOP request (WHOOP's edge may block default client agents).",
    )
    connect_timeout_s: float = shared.seconds_field(5.0, "TCP/TLS connect timeout.", most=60)
    request_timeout_s: float = shared.seconds_field(
        15.0, "Read/write/pool timeout of each WHOOP request.", most=120
    )
    max_connections: int = shared.count_field(
        20, "Connections the process's one HTTP client may open.", most=1000
    )
    retries: int = shared.count_field(
        3, "Retries of one call after a 5xx or a timeout (with jitter).", least=0, most=10
    )
    retry_base_s: float = shared.seconds_field(
        0.5, "First retry delay; doubled per retry, with full jitter.", most=60
    )
    retry_max_s: float = shared.seconds_field(8.0, "Largest delay between two retries.", most=600)
    rate_limit_pause_max_s: float = shared.seconds_field(
        3600.0, "Longest pause honoured after a 429 (X-RateLimit-Reset is in seconds, at most a day)."
    )

    # --- tokens ---
    refresh_margin_s: float = shared.seconds_field(
        300.0, "Refresh an access token this long before it expires.", least=0
    )

    # --- work scheduling ---
    concurrency: int = shared.count_field(8, "Fetch workers per process.", most=256)
    coalesce_window_s: float = shared.seconds_field(
        0.25,
        "A live fetch of a busy resource (a fetch of it queued, in flight or started this "
        "recently) waits this long for more webhooks on it (one call for all).",
        least=0,
        most=60,
    )
    coalesce_idle_s: float = shared.seconds_field(
        0.05,
        "A live fetch of an idle resource waits only this long (gathers the other events of "
        "the same change); as long as FETCHER_COALESCE_WINDOW_S: every live fetch waits the window.",
        least=0,
        most=60,
    )
    pending_backoff_s: Schedule = Field(
        default=(1800.0, 3600.0, 7200.0, 14400.0, 28800.0),
        description="Re-fetch delays of a PENDING_SCORE document (or a recovery not there yet), seconds; "
        "a scoring webhook that arrives first makes the re-fetch live at once.",
    )
    not_found_backoff_s: Schedule = Field(
        default=(5.0, 30.0, 120.0),
        description="Retry delays of a 404 on a *.updated fetch; after the last one it counts as deleted.",
    )
    error_backoff_s: Schedule = Field(
        default=(5.0, 15.0, 60.0, 300.0, 900.0),
        description="Delays before a task that failed (WHOOP down) runs again; the last one repeats.",
    )
    lease_s: float = shared.seconds_field(
        60.0,
        "How long a claimed task belongs to its worker; a dead worker's tasks run again after.",
        least=1,
        most=3600,
    )
    poll_interval_s: float = shared.seconds_field(
        1.0, "Longest sleep of an idle worker (new work also wakes it).", most=60
    )

    # --- backfill and reconciliation ---
    backfill_page_size: int = shared.count_field(
        25, "limit of each collection page (WHOOP's maximum is 25).", most=25
    )
    reconcile_interval_s: float = shared.seconds_field(
        14 * 86_400.0,
        "Period of the slow full sweep (the safety net for what no targeted check reveals: a "
        "lost deletion, a light workout): each connected member's sleep and workout collections are read "
        "once per period, members spread evenly over it.",
    )
    reconcile_lookback_s: float = shared.seconds_field(
        15 * 86_400.0,
        "Time range a full sweep reads (records that occurred in the last ...); at least the "
        "sweep period, so consecutive sweeps leave no hole.",
    )
    reconcile_check_s: float = shared.seconds_field(
        900.0,
        "How often each member's gaps are looked for in the fetcher's own tables (no WHOOP "
        "call): a targeted read is enqueued only where a missed webhook is likely.",
    )
    reconcile_recovery_grace_s: float = shared.seconds_field(
        3 * 3600.0,
        "How long after a scored main sleep ended its recovery may be missing before it is "
        "read (its recovery.updated webhook was probably missed).",
    )
    reconcile_silent_after_s: float = shared.seconds_field(
        30 * 3600.0,
        "A member without any main sleep ending for this long gets one page of the sleep and "
        "workout collections (a day whose webhooks were all missed).",
    )
    reconcile_retry_s: float = shared.seconds_field(
        12 * 3600.0, "A targeted read that found nothing is not repeated before this long."
    )
    reconcile_rest_strain: float = Field(
        default=9.5,
        gt=0,
        lt=21,
        description="The most strain a 24-hour cycle reaches without a workout: a closed cycle whose "
        "strain its known workouts leave more unexplained than that (load scaled to the cycle's length) "
        "gets one read of the workout collection over the cycle.",
    )
    reconcile_rest_floor_strain: float = Field(
        default=4.0,
        gt=0,
        lt=21,
        description="The least strain a 24-hour cycle has without a workout: a closed cycle whose strain "
        "its known workouts over-explain, leaving less than that for the day's rest (load scaled to the "
        "cycle's length), lost a workout we hold (its workout.deleted webhook was missed): one read of the "
        "workout collection over the cycle finds which.",
    )
    reconcile_scan_s: float = shared.seconds_field(
        60.0, "How often a fetcher looks for members due for reconciliation."
    )

    # --- coalescing of events against fetches ---
    clock_skew_s: float = shared.seconds_field(
        0.5,
        "Assumed clock skew between ingest and fetcher hosts: an event counts as covered by "
        "a fetch only when the fetch started this much after the event was received.",
        least=0,
        most=60,
    )

    @field_validator("error_backoff_s")
    @classmethod
    def _non_empty(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("must hold at least one delay")
        return value

    @model_validator(mode="after")
    def _reserves_ordered(self) -> FetcherSettings:
        if not self.quota_reserve_refetch <= self.quota_reserve_reconcile <= self.quota_reserve_backfill:
            raise ValueError(
                "FETCHER_QUOTA_RESERVE_REFETCH <= FETCHER_QUOTA_RESERVE_RECONCILE <= "
                "FETCHER_QUOTA_RESERVE_BACKFILL must hold (priorities)"
            )
        if not self.reconcile_rest_floor_strain < self.reconcile_rest_strain:
            raise ValueError("FETCHER_RECONCILE_REST_FLOOR_STRAIN < FETCHER_RECONCILE_REST_STRAIN must hold")
        return self


class ProcessorsSettings(ServiceSettings):
    """Process-wide configuration of ``python -m processors`` (prefix ``PROCESSORS_``)."""

    model_config = SettingsConfigDict(env_prefix="PROCESSORS_")

    log_level: str = shared.log_level_field("processors")
    run_fetcher: bool = Field(default=True, description="Run the fetcher in this process.")
    run_normalizer: bool = Field(default=True, description="Run the normalizer in this process.")
    normalizer_group_id: str = Field(
        default="normalizer", description="Kafka consumer group of the normalizer."
    )
    records_topic: str = Field(
        default="wear.records.v1", description="Topic the normalizer appends canonical records to."
    )
    db_pool_size: int = shared.pool_size_field(least=2)
    metrics_host: str = shared.host_field("Interface of the ops server (/metrics, /healthz, /readyz).")
    metrics_port: int = shared.port_field(9101, "TCP port of the ops server (0: any free port, logged).")


@dataclass(frozen=True)
class Settings(SettingsBundle):
    """Everything the processors process reads, bundled (``Settings.from_env()`` reads every part)."""

    processors: ProcessorsSettings
    fetcher: FetcherSettings
    kafka: KafkaSettings
    postgres: PostgresSettings
    whoop: WhoopAppSettings
    vault: VaultSettings
