"""Settings shared by every process: Kafka, PostgreSQL and the WHOOP app registration.

Each service reads its own frozen settings object once in ``__main__`` and passes it down; nothing
else reads ``os.environ``. Shared names are unprefixed (``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL``, ``WHOOP_CLIENT_ID`` ...); service-specific ones carry the service's prefix.

The defaults are the documented *development* values that make ``make run`` work on a fresh
machine against the local broker, the local PostgreSQL cluster and the WHOOP simulator. The
WHOOP client secret default is the public test-vector secret of the WHOOP reference
(``whoop-api-v2.md`` §10.4): it is useless against the real WHOOP cloud.
"""

from __future__ import annotations

from typing import Annotated, Any, Self, get_type_hints

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "DEV_WHOOP_CLIENT_ID",
    "DEV_WHOOP_CLIENT_SECRET",
    "DEV_WHOOP_REDIRECT_URIS",
    "CsvItems",
    "KafkaSettings",
    "PostgresSettings",
    "ServiceSettings",
    "SettingsBundle",
    "WhoopAppSettings",
    "auth_failure_window_field",
    "auth_failures_max_field",
    "count_field",
    "host_field",
    "log_level_field",
    "pool_size_field",
    "port_field",
    "readyz_cache_field",
    "retry_after_field",
    "seconds_field",
    "share_field",
    "split_csv",
]

DEV_WHOOP_CLIENT_ID = "sim-client-id"
DEV_WHOOP_CLIENT_SECRET = "sim-client-secret-DO-NOT-USE-7f3a9c"  # noqa: S105 - public test-vector value
DEV_WHOOP_REDIRECT_URIS = (
    "synheart://oauth/callback",
    "http://127.0.0.1:8000/v1/oauth/callback",
    "http://127.0.0.1:8000/v1/whoop-cloud/oauth/callback",
)


def split_csv(value: object) -> object:
    """Read a comma-separated environment value as a tuple of stripped, non-empty items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CsvItems = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_csv)]
"""A field read from one comma-separated variable (``a, b,`` -> ``("a", "b")``), never as JSON."""


# Fields that several services declare alike, each under its own prefix (one definition of each
# rule and wording; the generated configuration reference shows them per service).


def seconds_field(
    default: float, description: str, *, least: float | None = None, most: float | None = None
) -> Any:
    """A duration in seconds: more than 0 (at least ``least`` when given), at most ``most``."""
    return Field(default=default, gt=0 if least is None else None, ge=least, le=most, description=description)


def count_field(default: int, description: str, *, least: int = 1, most: int | None = None) -> Any:
    """A whole number: at least ``least``, at most ``most``."""
    return Field(default=default, ge=least, le=most, description=description)


def share_field(default: float, description: str) -> Any:
    """A share of a whole: at least 0, less than 1."""
    return Field(default=default, ge=0, lt=1, description=description)


def log_level_field(process: str) -> Any:
    """``<PREFIX>LOG_LEVEL``: the Python logging level of ``process``."""
    return Field(default="INFO", description=f"Python logging level of the {process} process.")


def host_field(description: str, default: str = "127.0.0.1") -> Any:
    """An interface a server binds to (the loopback interface by default)."""
    return Field(default=default, description=description)


def port_field(default: int, description: str) -> Any:
    """A TCP port a server binds to (0: any free port)."""
    return Field(default=default, ge=0, le=65535, description=description)


def pool_size_field(least: int = 1) -> Any:
    """``<PREFIX>DB_POOL_SIZE``: the largest PostgreSQL pool of a process."""
    return Field(default=10, ge=least, le=100, description="Largest PostgreSQL pool size.")


def retry_after_field(default: int, sent_with: str) -> Any:
    """``<PREFIX>RETRY_AFTER_S``: the Retry-After header of a refusal worth retrying."""
    return Field(default=default, ge=1, le=3600, description=f"Retry-After seconds sent with {sent_with}.")


def auth_failures_max_field(prefix: str) -> Any:
    """``<PREFIX>AUTH_FAILURES_MAX``: failed bearer authentications allowed per client address."""
    return Field(
        default=20,
        ge=0,
        le=10_000,
        description="Failed bearer authentications (unknown or revoked token) allowed per client address "
        f"within {prefix}AUTH_FAILURE_WINDOW_S; beyond, 429 too_many_failed_authentications without a "
        "token lookup (0 disables).",
    )


def auth_failure_window_field(prefix: str) -> Any:
    """``<PREFIX>AUTH_FAILURE_WINDOW_S``: the window of ``<PREFIX>AUTH_FAILURES_MAX``."""
    return Field(default=60.0, gt=0, le=86_400, description=f"Window of {prefix}AUTH_FAILURES_MAX, seconds.")


def readyz_cache_field(result: str) -> Any:
    """``<PREFIX>READYZ_CACHE_S``: how long a ``/readyz`` result is reused."""
    return Field(default=2.0, ge=0, le=60, description=f"How long a {result} is reused, seconds (0: never).")


class ServiceSettings(BaseSettings):
    """Base of the pipeline's settings classes: frozen, unknown variables ignored, no ``.env`` file read.

    A service's class adds its prefix with ``model_config = SettingsConfigDict(env_prefix="X_")``
    (pydantic merges it with this configuration).
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=None)


class SettingsBundle:
    """Base of a process's frozen dataclass of settings parts, one field per settings class."""

    @classmethod
    def from_env(cls) -> Self:
        """Read every part from the environment."""
        parts: dict[str, Any] = {name: part() for name, part in get_type_hints(cls).items()}
        return cls(**parts)


class KafkaSettings(ServiceSettings):
    """Where the Kafka cluster is."""

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_client_id_prefix: str = Field(
        default="whoop-pipeline", description="Prefix of the client.id of every Kafka client we create."
    )


class PostgresSettings(ServiceSettings):
    """Where the PostgreSQL database is."""

    database_url: str = Field(
        default="postgresql://whoop@127.0.0.1:25432/whoop",
        description="libpq URL of the PostgreSQL database (the local cluster of deploy/ by default).",
    )


class WhoopAppSettings(ServiceSettings):
    """The WHOOP app registration: shared by the pipeline and the simulator, so both sides agree."""

    whoop_client_id: str = Field(default=DEV_WHOOP_CLIENT_ID, description="OAuth client id of the WHOOP app.")
    whoop_client_secret: SecretStr = Field(
        default=SecretStr(DEV_WHOOP_CLIENT_SECRET),
        description="OAuth client secret; also the webhook signing key (whoop-api-v2.md §10.4).",
    )
    whoop_redirect_uris: CsvItems = Field(
        default=DEV_WHOOP_REDIRECT_URIS,
        description="Comma-separated redirect URIs registered for the app (exact match).",
    )
    whoop_webhook_url: str = Field(
        default="http://127.0.0.1:8000/v1/webhooks/whoop",
        description="URL the WHOOP webhook sender posts to (the ingest edge).",
    )
    whoop_api_base_url: str = Field(
        default="http://127.0.0.1:8100",
        description="Base URL of the WHOOP API (the simulator by default; https://api.prod.whoop.com).",
    )
