"""The ingest edge's errors, each mapped to one HTTP answer by the routes.

    PipelineError (infra.errors)
    └── IngestError
        ├── AppendUnavailable (retriable)   Kafka did not acknowledge within the bound → 503 + Retry-After
        ├── StateRejected                   OAuth state unknown / used / expired / bound elsewhere → 400
        ├── ExchangeCodeRejected            one-time exchange code unknown / used / expired → 400
        └── WhoopError
            ├── WhoopRejected               WHOOP answered a definite no (invalid_grant, 401 ...) → 400/502
            └── WhoopUnavailable (retriable) network error, timeout, 429 or 5xx → 503

Each carries a short machine-readable ``code``: it goes into the JSON error body and the metrics,
and never contains a token, a secret or health data.
"""

from __future__ import annotations

from typing import ClassVar

from infra.errors import PipelineError

__all__ = [
    "AppendUnavailable",
    "ExchangeCodeRejected",
    "IngestError",
    "StateRejected",
    "WhoopError",
    "WhoopRejected",
    "WhoopUnavailable",
]


class IngestError(PipelineError):
    """Base of the ingest edge's errors; ``code`` is machine-readable and safe to show."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class AppendUnavailable(IngestError):
    """Kafka did not acknowledge the append within the configured bound."""

    retriable: ClassVar[bool] = True


class StateRejected(IngestError):
    """The OAuth state is unknown, already used, expired, or bound to another redirect URI."""


class ExchangeCodeRejected(IngestError):
    """The one-time exchange code is unknown, already used or expired."""


class WhoopError(IngestError):
    """WHOOP's OAuth server or API did not give us what we asked for."""

    def __init__(self, code: str, message: str = "", status: int | None = None) -> None:
        super().__init__(code, message)
        self.status = status


class WhoopRejected(WhoopError):
    """A definite refusal (e.g. ``invalid_grant``, ``invalid_client``, 401): retrying will not help."""


class WhoopUnavailable(WhoopError):
    """WHOOP could not be reached or answered 429/5xx: retrying later may help."""

    retriable: ClassVar[bool] = True
