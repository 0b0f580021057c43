"""The processors' own errors.

    PipelineError (infra.errors; retriable: False)
    ├── NormalizationError (retriable: False)
    │       a WHOOP document that cannot become canonical records: the runner dead-letters it
    └── FetchError (retriable: False)                the fetcher's errors
        ├── WhoopUnavailable (retriable: True)       network error, timeout or 5xx after the retries
        ├── QuotaDeferred (retriable: True)          no budget now (or WHOOP said 429): try after wait_s
        ├── TokenRefreshUnavailable (True)           WHOOP's token endpoint is down: try later
        ├── WhoopNotFound                            404: unknown, deleted or not yet visible
        ├── WhoopUnauthorized                        401 even with a freshly refreshed token
        ├── WhoopRejected                            400, 403 and any other 4xx: our request is wrong
        ├── WhoopBadResponse                         a 2xx whose body is not the JSON object WHOOP documents
        └── NeedsReauth                              no usable grant (invalid_grant, no refresh token)

Each class says whether retrying can help (``retriable``). A non-retriable error on a consumer path
sends the record to the topic's dead-letter twin, with the reason and the origin offset. For the
fetcher, a retriable error defers the work (it runs again later, never dropped) and
``processors.fetch_plan.task_failure`` decides for the rest. No message ever contains a token.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from infra.errors import PipelineError

__all__ = [
    "FetchError",
    "NeedsReauth",
    "NormalizationError",
    "QuotaDeferred",
    "TokenRefreshUnavailable",
    "WhoopBadResponse",
    "WhoopNotFound",
    "WhoopRejected",
    "WhoopUnauthorized",
    "WhoopUnavailable",
]


class NormalizationError(PipelineError):
    """A document the normalizer cannot turn into records; ``reason`` says precisely why.

    The normalizer is a pure function, so the same document fails the same way every time:
    retrying cannot help, the document goes to the dead-letter topic.
    """

    retriable: ClassVar[bool] = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchError(PipelineError):
    """Root of the fetcher's errors."""

    retriable: ClassVar[bool] = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WhoopUnavailable(FetchError):
    """WHOOP did not answer usefully (network, timeout, 5xx) within the bounded retries."""

    retriable: ClassVar[bool] = True


class QuotaDeferred(FetchError):
    """The shared quota has no room for this priority now; ``wait_s`` says when to try again."""

    retriable: ClassVar[bool] = True

    def __init__(self, message: str, wait_s: float, until: datetime | None = None) -> None:
        super().__init__(message, 429)
        self.wait_s = wait_s
        self.until = until  # the same moment for every caller refused for want of the same grant


class TokenRefreshUnavailable(FetchError):
    """WHOOP's token endpoint failed (5xx, timeout): the grant may be fine, try later."""

    retriable: ClassVar[bool] = True


class WhoopNotFound(FetchError):
    """404: the resource is unknown, deleted, or not yet visible."""


class WhoopUnauthorized(FetchError):
    """401 with a token that was just refreshed."""


class WhoopRejected(FetchError):
    """A 4xx other than 401, 404 and 429: retrying the same request cannot help."""


class WhoopBadResponse(FetchError):
    """A 2xx whose body is not a JSON object."""


class NeedsReauth(FetchError):
    """The member must authorize again: WHOOP refused the refresh token (or none is stored)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, 400)
        self.reason = reason
