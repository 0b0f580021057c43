"""The projection stage's errors: the worker's and the query API's, each with one HTTP answer.

    PipelineError (infra.errors)
    └── ProjectionError
        ├── RecordRejected                  a record that is not a valid canonical record → dead letter
        ├── StoreUnavailable (retriable)    PostgreSQL did not answer → batch retried / API 503
        └── ApiError                        an API answer other than 2xx; ``status`` and ``code``
            ├── BadRequest                  400: a query parameter or path id is malformed
            ├── Unauthenticated             401: no, a malformed, unknown or revoked bearer token
            ├── Forbidden                   403: an admin token without the scope the route needs
            ├── NotFound                    404: no such route, record, or another member's data
            ├── MethodNotAllowed            405: the route exists for other methods
            ├── RateLimited (retriable)     429: the token's request budget is spent (Retry-After)
            ├── AuthenticationThrottled     429: the address failed too many authentications (Retry-After)
            └── Unavailable (retriable)     503: the database is unavailable (Retry-After)

Messages are safe to show: they never contain a token, a secret or health data.
"""

from __future__ import annotations

from typing import ClassVar

from infra.errors import PipelineError

__all__ = [
    "ApiError",
    "AuthenticationThrottled",
    "BadRequest",
    "Forbidden",
    "MethodNotAllowed",
    "NotFound",
    "ProjectionError",
    "RateLimited",
    "RecordRejected",
    "StoreUnavailable",
    "Unauthenticated",
    "Unavailable",
]


class ProjectionError(PipelineError):
    """Base of the projection stage's errors."""


class RecordRejected(ProjectionError):
    """A record on the records topic that cannot be projected (not JSON, invalid, unknown type)."""


class StoreUnavailable(ProjectionError):
    """PostgreSQL did not answer; the batch is retried from the stored offsets."""

    retriable: ClassVar[bool] = True


class ApiError(ProjectionError):
    """An API answer other than 2xx: ``status``, a machine-readable ``code`` and a safe message."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class BadRequest(ApiError):
    status = 400
    default_code = "bad_request"


class Unauthenticated(ApiError):
    status = 401
    default_code = "unauthenticated"


class Forbidden(ApiError):
    status = 403
    default_code = "insufficient_scope"


class NotFound(ApiError):
    status = 404
    default_code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    default_code = "method_not_allowed"


class RateLimited(ApiError):
    status = 429
    default_code = "rate_limited"
    retriable: ClassVar[bool] = True


class AuthenticationThrottled(ApiError):
    """The caller's address failed too many authentications: refused before any token lookup."""

    status = 429
    default_code = "too_many_failed_authentications"
    retriable: ClassVar[bool] = True

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many failed authentications from this address; retry later")
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    status = 503
    default_code = "unavailable"
    retriable: ClassVar[bool] = True
