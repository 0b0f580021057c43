"""Our API tokens over HTTP: how an issued token is answered, and its refresh.

* ``POST /v1/tokens/refresh`` with ``Authorization: Bearer <live user token>`` → a new token for the
  same member, scopes and device; the old one is revoked at once (a second refresh with it is 401).
  An admin token is 403 ``not_refreshable``; a member whose connection is not ``connected`` is 400
  ``not_connected``.

Every token answer carries ``user_id``, ``api_token``, ``token_type``, ``expires_at`` (ISO-8601) and
``expires_in`` (seconds), with ``Cache-Control: no-store``. A token is issued per device: the app may
name its device (``device_id``, up to 64 printable ASCII characters); without one it is the default
device, so connecting again replaces the previous token.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.vault import IssuedToken
from ingest.auth import authenticated
from ingest.errors import NotConnected
from ingest.http import JsonResponse, error_response
from ingest.services import Services, services_of

__all__ = ["DEFAULT_DEVICE", "NO_STORE", "api_token_ttl", "device_id_of", "token_fields", "token_routes"]

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
DEFAULT_DEVICE = "default"
_MAX_DEVICE_ID = 64


def api_token_ttl(services: Services) -> timedelta:
    """How long a token issued now lives (``INGEST_API_TOKEN_TTL_DAYS``)."""
    return timedelta(days=services.settings.ingest.api_token_ttl_days)


def device_id_of(body: dict[str, object]) -> str | None:
    """The body's ``device_id`` (the default device when absent), or None when it is malformed."""
    value = body.get("device_id")
    if value is None:
        return DEFAULT_DEVICE
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_DEVICE_ID:
        return None
    return value if value.isascii() and value.isprintable() else None


def token_fields(issued: IssuedToken, ttl: timedelta) -> dict[str, object]:
    """The fields of a token answer."""
    return {
        "user_id": issued.user_id,
        "api_token": issued.token,
        "token_type": "bearer",
        "expires_at": issued.expires_at.isoformat(),
        "expires_in": int(ttl.total_seconds()),
    }


async def refresh(request: Request) -> Response:
    services = services_of(request)
    principal = await authenticated(request, services)
    if isinstance(principal, Response):
        return principal
    if principal.kind != "user":
        return error_response(403, "not_refreshable", "admin tokens are configured, not refreshed")
    ttl = api_token_ttl(services)
    try:
        issued = await services.require_store().refresh_api_token(principal.name, ttl=ttl)
    except NotConnected as exc:
        return error_response(400, exc.code, str(exc))
    if issued is None:  # revoked or refreshed meanwhile
        return error_response(401, "invalid_token", "the token is unknown, revoked or expired")
    services.metrics.oauth_outcomes.labels("token_refreshed").inc()
    logger.info("user %s refreshed an API token", issued.user_id)
    return JsonResponse(token_fields(issued, ttl), headers=NO_STORE)


def token_routes() -> list[Route]:
    """The token routes."""
    return [Route("/v1/tokens/refresh", refresh, methods=["POST"])]
