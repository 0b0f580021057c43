"""The ingest edge's errors, each mapped to one HTTP answer by the routes.

    PipelineError (infra.errors)
    └── IngestError
        ├── AppendUnavailable (retriable)   Kafka did not acknowledge within the bound → 503 + Retry-After
        ├── StateRejected                   OAuth state unknown / used / expired / bound elsewhere, another
        │                                   browser's (no cookie), or the app's verifier is wrong → 400
        ├── ExchangeCodeRejected            one-time code unknown / used / expired, or a wrong verifier → 400
        ├── NotConnected                    no API token for a member whose connection is not connected → 400
        ├── PullInProgress                  the member already has an active pull (names it) → 409
        ├── PullRateLimited                 the member used today's pulls (says when to retry) → 429
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
    "NotConnected",
    "PullInProgress",
    "PullRateLimited",
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
    """The OAuth state is unknown, used, expired, bound to another redirect URI, browser or app verifier."""


class ExchangeCodeRejected(IngestError):
    """The one-time exchange code is unknown, already used or expired."""


class NotConnected(IngestError):
    """The member's connection is not ``connected``: no API token is issued."""


class PullInProgress(IngestError):
    """The member already has an active (requested or running) pull: ``job_id``."""

    def __init__(self, job_id: str) -> None:
        super().__init__("pull_in_progress", f"pull {job_id} of this member is still in progress")
        self.job_id = job_id


class PullRateLimited(IngestError):
    """The member started as many pulls as a day allows; one more is allowed in ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("pull_rate_limited", f"too many pulls today; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


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
