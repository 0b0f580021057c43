"""The OAuth routes, under both ``/v1/whoop-cloud/oauth/...`` (the SDK) and ``/v1/oauth/...`` (the seed doc).

* ``GET  authorize``  → ``{authorization_url, state, expires_in}`` (or, with ``redirect=true``, a 302 to
  WHOOP for a browser), setting the state's binding cookie; ``redirect_uri`` must be registered; the
  app may send its own ``code_challenge`` (S256).
* ``POST callback``   (SDK JSON ``{code, state, redirect_uri[, code_verifier, device_id]}``) →
  ``{user_id, api_token, expires_at, ...}`` once.
* ``GET  callback``   (browser, WHOOP redirected here; needs the binding cookie) → a redirect to the
  app's deep link, or a small HTML page, carrying a one-time code, never a long-lived token.
* ``POST exchange``   ``{code[, code_verifier, device_id]}`` (the one-time code) → the token answer once.
* ``DELETE disconnect?user_id=`` (the user's token or an admin ``connections`` token) → 204.
"""

from __future__ import annotations

import html
import logging
import secrets
from typing import Any, Literal, TypedDict
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ingest import connect
from ingest.auth import AccessDenied, authenticate, authorize_for_user
from ingest.errors import (
    AppendUnavailable,
    ExchangeCodeRejected,
    IngestError,
    NotConnected,
    StateRejected,
    WhoopRejected,
    WhoopUnavailable,
)
from ingest.http import BodyTooLarge, BodyUnreadable, JsonResponse, error_response, read_json
from ingest.pkce import binding_cookie_name, challenge_problem
from ingest.services import Services, services_of
from ingest.store import OAuthState
from ingest.token_routes import NO_STORE, api_token_ttl, device_id_of, token_fields

__all__ = ["oauth_routes"]

logger = logging.getLogger(__name__)

_MAX_PARAM = 512
_COOKIE_PATH = "/v1"


class _CookieAttributes(TypedDict):
    path: str
    secure: bool
    httponly: bool
    samesite: Literal["lax"]


def _binding(request: Request) -> _CookieAttributes:
    """The attributes of the browser-binding cookie: the same when it is set and when it is deleted (a
    browser deletes only the cookie it matches)."""
    secure = request.url.scheme == "https"
    return _CookieAttributes(path=_COOKIE_PATH, secure=secure, httponly=True, samesite="lax")


_CHALLENGE_REFUSALS = {
    "invalid_request": "code_challenge_method was sent without code_challenge",
    "code_challenge_required": "send code_challenge and code_challenge_method=S256",
    "unsupported_code_challenge_method": "only code_challenge_method=S256 is accepted",
    "invalid_code_challenge": "code_challenge must be 43 base64url characters (S256)",
}


def _failure(services: Services, exc: IngestError) -> tuple[int, str, str, dict[str, str]]:
    """(status, code, message, headers) of a known failure of the OAuth flow."""
    retry = {"Retry-After": str(services.settings.ingest.retry_after_s)}
    if isinstance(exc, StateRejected | ExchangeCodeRejected | NotConnected):
        return 400, exc.code, str(exc), {}
    if isinstance(exc, AppendUnavailable):
        return 503, "kafka_unavailable", "the event log is unavailable; retry later", retry
    if isinstance(exc, WhoopUnavailable):
        return 503, "whoop_unavailable", "WHOOP is unavailable; retry later", retry
    if isinstance(exc, WhoopRejected) and exc.code == "invalid_grant":
        return 400, "invalid_grant", "WHOOP refused the authorization code (invalid, expired or reused)", {}
    return 502, "whoop_rejected", f"WHOOP refused the request ({exc.code})", {}


def _json_failure(services: Services, exc: IngestError) -> Response:
    status, code, message, headers = _failure(services, exc)
    services.metrics.oauth_outcomes.labels(code).inc()
    logger.info("oauth failure: %s", code)
    return error_response(status, code, message, headers)


def _param(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) != 1 or len(values[0]) > _MAX_PARAM:
        return None
    return values[0]


async def authorize(request: Request) -> Response:
    services = services_of(request)
    registered = services.settings.whoop.whoop_redirect_uris
    for name in ("redirect_uri", "return_to", "state", "code_challenge", "code_challenge_method", "redirect"):
        if len(request.query_params.getlist(name)) > 1:
            return error_response(400, "duplicate_parameter", f"{name!r} appears more than once")
    redirect_uri = _param(request, "redirect_uri") or registered[0]
    if redirect_uri not in registered:
        return error_response(400, "redirect_uri_not_allowed", "redirect_uri is not registered for this app")
    return_to = _param(request, "return_to")
    if return_to is not None and return_to not in services.settings.ingest.app_return_uris:
        return error_response(400, "return_to_not_allowed", "return_to is not a registered app link")
    client_state = _param(request, "state")
    if client_state is not None and not client_state.isprintable():
        return error_response(400, "invalid_state_parameter", "state must be printable text")
    challenge = _param(request, "code_challenge")
    problem = challenge_problem(
        challenge,
        _param(request, "code_challenge_method"),
        required=services.settings.ingest.require_app_pkce,
    )
    if problem is not None:
        return error_response(400, problem, _CHALLENGE_REFUSALS[problem])
    started = await connect.start(services, redirect_uri, return_to, client_state, challenge)
    response: Response
    if _param(request, "redirect") in ("true", "1"):  # a browser starts here: straight on to WHOOP
        response = RedirectResponse(started.authorization_url, status_code=302, headers=NO_STORE)
    else:
        response = JsonResponse(
            {
                "authorization_url": started.authorization_url,
                "state": started.state,
                "expires_in": started.expires_in,
            },
            headers=NO_STORE,
        )
    response.set_cookie(
        binding_cookie_name(started.state), started.binding, max_age=started.expires_in, **_binding(request)
    )
    return response


async def _json_object(
    request: Request, services: Services, not_object: tuple[str, str]
) -> dict[str, Any] | Response:
    """The request's JSON object, or the error response that refuses it: 413 too large, 400 not JSON, and
    400 with ``not_object`` (code, message) when the JSON is not an object."""
    try:
        body = await read_json(request, services.settings.ingest.max_body_bytes)
    except BodyTooLarge:
        return error_response(413, "body_too_large", "the body is too large")
    except (ValueError, BodyUnreadable):
        return error_response(400, "malformed_json", "the body is not valid JSON")
    return body if isinstance(body, dict) else error_response(400, *not_object)


async def callback_json(request: Request) -> Response:
    services = services_of(request)
    body = await _json_object(request, services, ("invalid_payload", "the body must be a JSON object"))
    if isinstance(body, Response):
        return body
    names = ("code", "state", "redirect_uri", "error", "code_verifier")
    fields = {name: body.get(name) for name in names}
    if body.get("vendor", "whoop") != "whoop":
        return error_response(400, "unsupported_vendor", "only vendor 'whoop' is supported")
    for name, value in fields.items():
        if value is not None and (not isinstance(value, str) or not value or len(value) > _MAX_PARAM):
            return error_response(400, "invalid_field", f"{name!r} must be a non-empty string")
    device_id = device_id_of(body)
    if device_id is None:
        return error_response(400, "invalid_field", "'device_id' must be 1-64 printable ASCII characters")
    state = fields["state"]
    if state is None:
        return error_response(400, "missing_field", "'state' is required")
    ttl = api_token_ttl(services)
    try:
        bound = await connect.consume(services, state, fields["redirect_uri"])
        connect.check_sdk_flow(bound)
        connect.check_app_verifier(bound, fields["code_verifier"])
        if fields["error"] is not None:
            services.metrics.oauth_outcomes.labels("access_denied").inc()
            return error_response(403, "access_denied", "the member did not grant access")
        if fields["code"] is None:
            return error_response(400, "missing_field", "'code' is required")
        completed = await connect.complete(services, bound, fields["code"])
        issued = await services.require_store().issue_api_token(
            completed.connection.user_id, device_id=device_id, ttl=ttl
        )
    except IngestError as exc:
        return _json_failure(services, exc)
    return JsonResponse(
        {
            **token_fields(issued, ttl),
            "reconnected": completed.connection.reconnected,
            "scopes": list(completed.connection.scopes),
            "backfill_job_id": completed.backfill_job_id,
            "state": bound.client_state,
        },
        headers=NO_STORE,
    )


def _page(status: int, title: str, text: str, code: str | None = None) -> HTMLResponse:
    extra = (
        "<p>One-time code (enter it in the app; it expires in a few minutes):</p>"
        f"<p><code>{html.escape(code)}</code></p>"
        if code
        else ""
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{extra}</body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={**NO_STORE, "Referrer-Policy": "no-referrer"})


def _back_to_app(bound: OAuthState, return_to: str, params: dict[str, str]) -> Response:
    if bound.client_state is not None:
        params = {**params, "state": bound.client_state}
    separator = "&" if "?" in return_to else "?"
    return RedirectResponse(f"{return_to}{separator}{urlencode(params)}", status_code=302, headers=NO_STORE)


async def callback_browser(request: Request) -> Response:
    state = _param(request, "state")
    if state is None:
        return _page(400, "Connection failed", "The request has no valid state. Start again from the app.")
    response = await _browser_outcome(request, state)
    # the state is spent whatever happened: its binding is of no further use
    response.delete_cookie(binding_cookie_name(state), **_binding(request))
    return response


async def _browser_outcome(request: Request, state: str) -> Response:
    services = services_of(request)
    code, error = _param(request, "code"), _param(request, "error")
    try:
        bound = await connect.consume(services, state, None)
        connect.check_browser(bound, request.cookies.get(binding_cookie_name(state)))
    except StateRejected as exc:
        services.metrics.oauth_outcomes.labels(exc.code).inc()
        return _page(
            400, "Connection failed", f"This link is not valid ({exc.code}). Start again from the app."
        )
    if error is not None or code is None:
        reason = error if error is not None and error.isidentifier() else "access_denied"
        services.metrics.oauth_outcomes.labels("access_denied").inc()
        if bound.return_to is not None:
            return _back_to_app(bound, bound.return_to, {"error": reason})
        return _page(403, "Not connected", f"WHOOP did not grant access ({reason}).")
    try:
        completed = await connect.complete(services, bound, code)
        one_time = secrets.token_urlsafe(24)
        await services.require_store().create_exchange_code(
            one_time,
            completed.connection.user_id,
            services.settings.ingest.exchange_code_ttl_s,
            bound.app_code_challenge,
        )
    except IngestError as exc:
        status, failure, _, headers = _failure(services, exc)
        services.metrics.oauth_outcomes.labels(failure).inc()
        if bound.return_to is not None:
            return _back_to_app(bound, bound.return_to, {"error": failure})
        page = _page(status, "Connection failed", f"The connection could not be completed ({failure}).")
        page.headers.update(headers)
        return page
    if bound.return_to is not None:
        return _back_to_app(bound, bound.return_to, {"code": one_time})
    return _page(200, "WHOOP connected", "Your WHOOP account is connected.", one_time)


async def exchange(request: Request) -> Response:
    services = services_of(request)
    body = await _json_object(request, services, ("missing_field", "'code' is required"))
    if isinstance(body, Response):
        return body
    code, verifier = body.get("code"), body.get("code_verifier")
    if not isinstance(code, str) or not 0 < len(code) <= _MAX_PARAM:
        return error_response(400, "missing_field", "'code' is required")
    if verifier is not None and (not isinstance(verifier, str) or not 0 < len(verifier) <= _MAX_PARAM):
        return error_response(400, "invalid_field", "'code_verifier' must be a non-empty string")
    device_id = device_id_of(body)
    if device_id is None:
        return error_response(400, "invalid_field", "'device_id' must be 1-64 printable ASCII characters")
    ttl = api_token_ttl(services)
    try:
        issued = await services.require_store().redeem_exchange_code(
            code, verifier, device_id=device_id, ttl=ttl
        )
    except (ExchangeCodeRejected, NotConnected) as exc:
        return _json_failure(services, exc)
    return JsonResponse(token_fields(issued, ttl), headers=NO_STORE)


async def disconnect(request: Request) -> Response:
    services = services_of(request)
    user_id = _param(request, "user_id")
    if user_id is None:
        return error_response(400, "missing_field", "the query parameter 'user_id' is required")
    if request.query_params.get("vendor", "whoop") != "whoop":
        return error_response(400, "unsupported_vendor", "only vendor 'whoop' is supported")
    try:
        principal = await authenticate(request, services)
        authorize_for_user(principal, user_id, "connections")
    except AccessDenied as exc:
        return error_response(exc.status, exc.code, exc.message)
    connection = await services.require_store().connection(user_id)
    if connection is None:
        return error_response(404, "not_found", "no such user")
    try:
        await connect.disconnect(services, user_id, connection.whoop_user_id)
    except IngestError as exc:
        return _json_failure(services, exc)
    return Response(status_code=204)


def oauth_routes() -> list[Route]:
    """Every OAuth route under both prefixes."""
    routes: list[Route] = []
    for prefix in ("/v1/whoop-cloud/oauth", "/v1/oauth"):
        routes += [
            Route(f"{prefix}/authorize", authorize, methods=["GET"]),
            Route(f"{prefix}/callback", callback_json, methods=["POST"]),
            Route(f"{prefix}/callback", callback_browser, methods=["GET"]),
            Route(f"{prefix}/exchange", exchange, methods=["POST"]),
            Route(f"{prefix}/disconnect", disconnect, methods=["DELETE", "POST"]),
        ]
    return routes
