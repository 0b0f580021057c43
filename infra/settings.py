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
