"""The WHOOP v2 data API (``/developer/v2/...``, §5): bearer auth, scopes, quota, faults, pagination.

Every endpoint goes through one guard, in this order: quota (429 with the ``X-RateLimit-*``
headers, which every response carries), injected faults, the bearer token (401), the scope (401
or 403, configurable), then the endpoint's own answer from pre-rendered bytes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.oauth import Grant
from simulator.pagination import SortKey, decode_token, encode_token
from simulator.runtime import Simulator
from simulator.store import Entry, Kind, Store
from simulator.timefmt import parse_query_datetime

__all__ = ["data_routes"]

Answer = tuple[int, bytes]
Handler = Callable[[Simulator, Request, Grant], Answer]
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NOT_FOUND: Answer = (404, b'{"error":"No resource found"}')
_UNAUTHORIZED = b'{"error":"Authorization was not valid"}'
_TOO_MANY = b'{"error":"Too Many Requests"}'
_END = {"null": b"null", "empty": b'""'}


def _bad(detail: str) -> Answer:
    return 400, b'{"error":"Client error constructing the request","detail":"' + detail.encode() + b'"}'


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None or len(header) < 8 or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip()


def _guard(name: str, scope: str | None, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        sim: Simulator = request.app.state.simulator
        token = _bearer(request)
        grant = sim.authority.authenticate(token) if token else None
        app = grant.client_id if grant is not None else sim.client.client_id
        decision = sim.quota.hit(app)
        headers = decision.headers
        if not decision.allowed:
            return Response(_TOO_MANY, 429, headers, "application/json")
        fault = sim.faults.draw(name)
        if fault is not None:
            if fault.latency_ms:
                await sim.sleeper(fault.latency_ms / 1000)
            if fault.timeout:
                await sim.sleeper(sim.settings.fault_timeout_s)
                return Response(b'{"error":"Gateway Timeout"}', 504, headers, "application/json")
            if fault.force_429:
                return Response(_TOO_MANY, 429, sim.quota.reject(app).headers, "application/json")
            if fault.status is not None:
                body = b'{"error":"Server error occurred while making request"}'
                return Response(body, fault.status, headers, "application/json")
        if grant is None:
            return Response(_UNAUTHORIZED, 401, headers, "application/json")
        if scope is not None and scope not in grant.scopes:
            missing = b'{"error":"Missing scope ' + scope.encode() + b'"}'
            return Response(missing, sim.settings.missing_scope_status, headers, "application/json")
        status, body = handler(sim, request, grant)
        if status == 204:
            return Response(None, 204, headers)
        return Response(body, status, headers, "application/json")

    return endpoint


def _page_query(sim: Simulator, request: Request) -> tuple[int | None, int, SortKey | None, int]:
    """``(start_ms, end_ms, after, limit)`` from the query; ``ValueError`` when malformed."""
    params = request.query_params
    limit = int(params.get("limit", "10"))
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if limit > 25:
        if sim.settings.over_max_limit == "reject":
            raise ValueError("limit must be at most 25")
        limit = 25
    start = params.get("start")
    end = params.get("end")
    start_ms = parse_query_datetime(start) if start else None
    end_ms = parse_query_datetime(end) if end else sim.clock.now_ms()
    token = params.get("nextToken")
    return start_ms, end_ms, decode_token(token) if token else None, limit


def _collection(kind: Kind) -> Handler:
    def handler(sim: Simulator, request: Request, grant: Grant) -> Answer:
        try:
            start_ms, end_ms, after, limit = _page_query(sim, request)
        except ValueError as exc:
            return _bad(str(exc).replace('"', "'"))
        entries, more = sim.store.page(grant.user_id, kind, start_ms, end_ms, after, limit)
        records = b",".join(entry.body for entry in entries)
        if more:
            return 200, b'{"records":[' + records + b'],"next_token":"' + encode_token(
                entries[-1].key
            ).encode() + b'"}'
        end_repr = _END.get(sim.settings.end_of_list)
        if end_repr is None:
            return 200, b'{"records":[' + records + b"]}"
        return 200, b'{"records":[' + records + b'],"next_token":' + end_repr + b"}"

    return handler


def _int_param(request: Request, name: str) -> int | None:
    raw = request.path_params[name]
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _owned(entry: Entry | None, grant: Grant) -> Answer:
    """The document if it is the member's own, else 404 (another member's document does not exist)."""
    return (200, entry.body) if entry is not None and entry.doc["user_id"] == grant.user_id else _NOT_FOUND


def _by_cycle(lookup: Callable[[Store, int], Entry | None]) -> Handler:
    """A ``/cycle/{cycleId}...`` handler: the document ``lookup`` finds for the cycle."""

    def handler(sim: Simulator, request: Request, grant: Grant) -> Answer:
        cycle_id = _int_param(request, "cycle_id")
        if cycle_id is None:
            return _bad("cycleId must be an int64")
        return _owned(lookup(sim.store, cycle_id), grant)

    return handler


_cycle = _by_cycle(lambda store, cycle_id: store.cycles.get(cycle_id))
_cycle_sleep = _by_cycle(Store.main_sleep)
_cycle_recovery = _by_cycle(lambda store, cycle_id: store.recoveries.get(cycle_id))


def _by_uuid(kind: str) -> Handler:
    def handler(sim: Simulator, request: Request, grant: Grant) -> Answer:
        ident = request.path_params["ident"]
        if not _UUID.match(ident):
            return _bad(f"{kind} id must be a UUID")
        table = sim.store.sleeps if kind == "sleep" else sim.store.workouts
        return _owned(table.get(ident.lower()), grant)

    return handler


def _profile(sim: Simulator, request: Request, grant: Grant) -> Answer:
    body = sim.store.profiles.get(grant.user_id)
    return (200, body) if body is not None else _NOT_FOUND


def _body_measurement(sim: Simulator, request: Request, grant: Grant) -> Answer:
    body = sim.store.bodies.get(grant.user_id)
    return (200, body) if body is not None else _NOT_FOUND


def _revoke(sim: Simulator, request: Request, grant: Grant) -> Answer:
    sim.authority.revoke(grant.client_id, grant.user_id)
    return 204, b""


def _activity_mapping(sim: Simulator, request: Request, grant: Grant) -> Answer:
    v1_id = _int_param(request, "v1_id")
    if v1_id is None:
        return _bad("activityV1Id must be an int64")
    v2_id = sim.store.v1_map.get(v1_id)
    entry = sim.store.sleeps.get(v2_id or "") or sim.store.workouts.get(v2_id or "")
    if entry is None or entry.doc["user_id"] != grant.user_id:
        return _NOT_FOUND
    return 200, b'{"v2_activity_id":"' + entry.doc["id"].encode() + b'"}'


def data_routes() -> list[Route]:
    """The ``/developer`` routes, hottest first."""
    v2 = "/developer/v2"
    return [
        Route(f"{v2}/cycle", _guard("cycle.list", "read:cycles", _collection("cycle"))),
        Route(f"{v2}/activity/sleep", _guard("sleep.list", "read:sleep", _collection("sleep"))),
        Route(f"{v2}/activity/workout", _guard("workout.list", "read:workout", _collection("workout"))),
        Route(f"{v2}/recovery", _guard("recovery.list", "read:recovery", _collection("recovery"))),
        Route(f"{v2}/cycle/{{cycle_id}}", _guard("cycle.get", "read:cycles", _cycle)),
        Route(f"{v2}/cycle/{{cycle_id}}/sleep", _guard("cycle.sleep", "read:sleep", _cycle_sleep)),
        Route(
            f"{v2}/cycle/{{cycle_id}}/recovery", _guard("cycle.recovery", "read:recovery", _cycle_recovery)
        ),
        Route(f"{v2}/activity/sleep/{{ident}}", _guard("sleep.get", "read:sleep", _by_uuid("sleep"))),
        Route(f"{v2}/activity/workout/{{ident}}", _guard("workout.get", "read:workout", _by_uuid("workout"))),
        Route(f"{v2}/user/profile/basic", _guard("profile", "read:profile", _profile)),
        Route(f"{v2}/user/measurement/body", _guard("body", "read:body_measurement", _body_measurement)),
        Route(f"{v2}/user/access", _guard("access.delete", None, _revoke), methods=["DELETE"]),
        Route(
            "/developer/v1/activity-mapping/{v1_id}",
            _guard("activity_mapping", None, _activity_mapping),
        ),
    ]
