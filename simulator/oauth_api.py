"""HTTP face of the OAuth server: ``GET /oauth/oauth2/auth`` and ``POST /oauth/oauth2/token`` (§2).

The authorize endpoint answers 302 to the redirect URI (code or error) or, for an unknown client or
a redirect URI that is not registered, a Hydra-style HTML error page without redirecting. The token
endpoint reads the form body itself (no multipart dependency) and accepts ``client_secret_post``,
and HTTP Basic when configured.
"""

from __future__ import annotations

import base64
import binascii
import html
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from simulator.oauth import OAuthError
from simulator.runtime import Simulator

__all__ = ["oauth_routes"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _authorize(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    outcome = sim.authority.authorize(dict(request.query_params), sim.member_ids())
    if outcome.location is not None:
        return RedirectResponse(outcome.location, status_code=302)
    page = (
        "<!DOCTYPE html><html><head><title>An error occurred</title></head><body>"
        "<h1>The OAuth2 request resulted in an error.</h1>"
        f"<p>{html.escape(outcome.message)}</p></body></html>"
    )
    return HTMLResponse(page, status_code=outcome.status)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    return user, password


async def _token(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    fault = sim.faults.draw("token")
    if fault is not None:
        if fault.latency_ms:
            await sim.sleeper(fault.latency_ms / 1000)
        if fault.status is not None:
            error = OAuthError("server_error", "The authorization server encountered an error.", fault.status)
            return Response(orjson.dumps(error.body()), error.status, _NO_STORE, "application/json")
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    basic = _basic(request) if sim.settings.token_basic_auth else None
    try:
        body = sim.authority.token(form, basic)
    except OAuthError as exc:
        headers = dict(_NO_STORE)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Basic"
        return Response(orjson.dumps(exc.body()), exc.status, headers, "application/json")
    return Response(orjson.dumps(body), 200, _NO_STORE, "application/json")


def oauth_routes() -> list[Route]:
    """The two OAuth routes."""
    return [
        Route("/oauth/oauth2/auth", _authorize, methods=["GET"]),
        Route("/oauth/oauth2/token", _token, methods=["POST"]),
    ]
