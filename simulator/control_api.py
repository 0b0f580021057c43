"""The control API under ``/_sim``: members, tokens, scenarios, quota, time scale, faults, webhooks.

For scripts, tests and benchmarks only; it is not part of WHOOP and is documented in
``docs/simulator.md``. Bodies are JSON validated by small pydantic models (400 on a bad body).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.faults import FaultRule
from simulator.generator import Member
from simulator.oauth import SCOPES, OAuthError
from simulator.runtime import Simulator
from simulator.scenarios import ScenarioError, Scoring
from simulator.webhooks import WebhookEvent, WebhookSwitches

__all__ = ["control_routes"]

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewMembers(_Body):
    count: int = Field(default=1, ge=1, le=1000)
    days: int | None = Field(default=None, ge=1, le=3650)


class IssueTokens(_Body):
    scopes: list[str] = Field(default_factory=lambda: sorted(SCOPES))


class FailRefresh(_Body):
    user_id: int | None = None
    count: int = Field(default=1, ge=1)
    error: Literal["invalid_grant", "server_error"] = "invalid_grant"


class OAuthMode(_Body):
    mode: Literal["approve", "deny"]


class NextUser(_Body):
    user_id: int


class NewWorkout(_Body):
    user_id: int
    sport_name: str | None = None
    scoring: Scoring = "scored"
    score_after_s: float | None = Field(default=None, ge=0)
    outcome: Literal["SCORED", "UNSCORABLE"] = "SCORED"


class NewSleep(_Body):
    user_id: int
    nap: bool = False
    scoring: Scoring = "pending"
    score_after_s: float | None = Field(default=None, ge=0)
    outcome: Literal["SCORED", "UNSCORABLE"] = "SCORED"


class EditSleep(_Body):
    sleep_id: str
    shift_minutes: int = 1


class EditWorkout(_Body):
    workout_id: str


class Delete(_Body):
    kind: Literal["sleep", "workout"]
    id: str


class CompleteScoring(_Body):
    kind: Literal["sleep", "workout"]
    id: str
    outcome: Literal["SCORED", "UNSCORABLE"] = "SCORED"


class QuotaUpdate(_Body):
    per_minute: int | None = Field(default=None, ge=1)
    per_day: int | None = Field(default=None, ge=1)
    enabled: bool | None = None


class TimeScale(_Body):
    time_scale: float = Field(gt=0)


class RawEvent(_Body):
    user_id: int
    type: str
    id: str
    v1_id: int | None = None


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": message}, status)


async def _parse(request: Request, model: type[M]) -> M:
    raw = await request.body()
    return model.model_validate_json(raw or b"{}")


def _sim(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


def _member_json(sim: Simulator, member: Member) -> dict[str, Any]:
    user_id = member.user_id
    return {
        **member.profile,
        "home_zone": member.home_zone,
        "connected": sim.authority.is_connected(sim.client.client_id, user_id),
        "counts": {
            kind: sim.store.count(user_id, kind) for kind in ("cycle", "sleep", "workout", "recovery")
        },
    }


def _events_json(events: list[WebhookEvent]) -> list[dict[str, Any]]:
    return [{"type": e.type, "id": e.id, "user_id": e.user_id, "trace_id": e.trace_id} for e in events]


def _handler(fn: Callable[[Request, Simulator], Awaitable[Response]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request, _sim(request))
        except ValidationError as exc:
            return _json({"error": "invalid body", "detail": exc.errors(include_url=False)}, 400)
        except ScenarioError as exc:
            return _error(str(exc), 409)
        except OAuthError as exc:
            return _json(exc.body(), exc.status)

    return endpoint


async def _health(request: Request, sim: Simulator) -> Response:
    return _json({"status": "ok", "members": len(sim.store.members), "client_id": sim.client.client_id})


async def _members(request: Request, sim: Simulator) -> Response:
    if request.method == "POST":
        body = await _parse(request, NewMembers)
        created = sim.add_members(body.count, body.days or sim.settings.days)
        return _json({"members": [_member_json(sim, m) for m in created]}, 201)
    return _json({"members": [_member_json(sim, m) for m in sim.store.members.values()]})


def _user(request: Request, sim: Simulator) -> int:
    raw = request.path_params["user_id"]
    if not raw.isdigit() or int(raw) not in sim.store.members:
        raise ScenarioError(f"unknown member {raw}")
    return int(raw)


async def _tokens(request: Request, sim: Simulator) -> Response:
    user_id = _user(request, sim)
    body = await _parse(request, IssueTokens)
    return _json(sim.authority.issue(sim.client.client_id, user_id, body.scopes))


async def _expire(request: Request, sim: Simulator) -> Response:
    return _json({"expired": sim.authority.expire(_user(request, sim))})


async def _revoke(request: Request, sim: Simulator) -> Response:
    sim.authority.revoke(sim.client.client_id, _user(request, sim))
    return Response(status_code=204)


async def _fail_refresh(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, FailRefresh)
    sim.authority.fail_refreshes(body.user_id, body.count, body.error)
    return _json(body.model_dump())


async def _oauth_mode(request: Request, sim: Simulator) -> Response:
    sim.authority.mode = (await _parse(request, OAuthMode)).mode
    return _json({"mode": sim.authority.mode})


async def _next_user(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, NextUser)
    if body.user_id not in sim.store.members:
        raise ScenarioError(f"unknown member {body.user_id}")
    sim.authority.next_users.append(body.user_id)
    return _json({"queued": list(sim.authority.next_users)})


def _created(
    sim: Simulator, kind: str, body: NewWorkout | NewSleep, doc: dict[str, Any], events: list[WebhookEvent]
) -> Response:
    """Emit the events of a new record, schedule its scoring when asked; 201 with the record."""
    sim.emit(events)
    if body.scoring == "pending" and body.score_after_s is not None:
        sim.schedule_scoring(kind, doc["id"], body.outcome, body.score_after_s)
    return _json({"record": doc, "events": _events_json(events)}, 201)


def _emitted(sim: Simulator, events: list[WebhookEvent]) -> Response:
    """Emit ``events``; 200 with them."""
    sim.emit(events)
    return _json({"events": _events_json(events)})


async def _new_workout(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, NewWorkout)
    doc, events = sim.scenarios.new_workout(body.user_id, sport_name=body.sport_name, scoring=body.scoring)
    return _created(sim, "workout", body, doc, events)


async def _new_sleep(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, NewSleep)
    doc, events = sim.scenarios.new_sleep(body.user_id, nap=body.nap, scoring=body.scoring)
    return _created(sim, "sleep", body, doc, events)


async def _edit_sleep(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, EditSleep)
    events = sim.scenarios.edit_sleep(body.sleep_id, body.shift_minutes)
    return _emitted(sim, events)


async def _edit_workout(request: Request, sim: Simulator) -> Response:
    events = sim.scenarios.edit_workout((await _parse(request, EditWorkout)).workout_id)
    return _emitted(sim, events)


async def _delete(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, Delete)
    events = sim.scenarios.delete(body.kind, body.id)
    return _emitted(sim, events)


async def _complete(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, CompleteScoring)
    events = sim.scenarios.complete_scoring(body.kind, body.id, body.outcome)
    return _emitted(sim, events)


async def _pending(request: Request, sim: Simulator) -> Response:
    return _json({"pending": sim.scenarios.pending()})


async def _quota(request: Request, sim: Simulator) -> Response:
    if request.method == "DELETE":
        sim.quota.reset()
    elif request.method == "PUT":
        body = await _parse(request, QuotaUpdate)
        sim.quota.per_minute = body.per_minute or sim.quota.per_minute
        sim.quota.per_day = body.per_day or sim.quota.per_day
        sim.quota.enabled = sim.quota.enabled if body.enabled is None else body.enabled
    return _json(sim.quota.snapshot())


async def _time_scale(request: Request, sim: Simulator) -> Response:
    if request.method == "PUT":
        sim.time_scale = (await _parse(request, TimeScale)).time_scale
    return _json({"time_scale": sim.time_scale})


async def _faults(request: Request, sim: Simulator) -> Response:
    if request.method == "DELETE":
        sim.faults.clear()
    return _json({"faults": sim.faults.snapshot()})


async def _fault(request: Request, sim: Simulator) -> Response:
    rule = await _parse(request, FaultRule)
    try:
        sim.faults.set(request.path_params["endpoint"], rule)
    except KeyError:
        return _error(f"unknown endpoint {request.path_params['endpoint']}", 404)
    return _json({"faults": sim.faults.snapshot()})


async def _webhooks(request: Request, sim: Simulator) -> Response:
    return _json(sim.sender.snapshot())


async def _switches(request: Request, sim: Simulator) -> Response:
    update = orjson.loads(await request.body() or b"{}")
    if not isinstance(update, dict):
        return _error("expected a JSON object")
    sim.sender.switches = WebhookSwitches.model_validate({**sim.sender.switches.model_dump(), **update})
    return _json(sim.sender.switches.model_dump())


async def _deliveries(request: Request, sim: Simulator) -> Response:
    rows = [
        {
            "trace_id": a.trace_id,
            "type": a.type,
            "id": a.id,
            "user_id": a.user_id,
            "attempt": a.attempt,
            "timestamp_ms": a.timestamp_ms,
            "status": a.status,
            "error": a.error,
            "outcome": a.outcome,
        }
        for a in sim.sender.attempts
    ]
    return _json({"deliveries": rows})


async def _settle(request: Request, sim: Simulator) -> Response:
    await sim.settle()
    return _json(sim.sender.snapshot())


async def _send(request: Request, sim: Simulator) -> Response:
    body = await _parse(request, RawEvent)
    event = WebhookEvent(body.user_id, body.type, body.id, sim.scenarios.trace_id(), body.v1_id)
    sim.emit([event])
    return _json({"events": _events_json([event])}, 202)


def control_routes() -> list[Route]:
    """The ``/_sim`` routes."""
    routes: list[tuple[str, Callable[[Request, Simulator], Awaitable[Response]], list[str]]] = [
        ("/health", _health, ["GET"]),
        ("/members", _members, ["GET", "POST"]),
        ("/members/{user_id}/tokens", _tokens, ["POST"]),
        ("/members/{user_id}/expire-token", _expire, ["POST"]),
        ("/members/{user_id}/revoke", _revoke, ["POST"]),
        ("/oauth/fail-refresh", _fail_refresh, ["POST"]),
        ("/oauth/mode", _oauth_mode, ["PUT"]),
        ("/oauth/next-user", _next_user, ["POST"]),
        ("/scenarios/new-workout", _new_workout, ["POST"]),
        ("/scenarios/new-sleep", _new_sleep, ["POST"]),
        ("/scenarios/edit-sleep", _edit_sleep, ["POST"]),
        ("/scenarios/edit-workout", _edit_workout, ["POST"]),
        ("/scenarios/delete", _delete, ["POST"]),
        ("/scenarios/complete-scoring", _complete, ["POST"]),
        ("/scenarios/pending", _pending, ["GET"]),
        ("/quota", _quota, ["GET", "PUT", "DELETE"]),
        ("/time-scale", _time_scale, ["GET", "PUT"]),
        ("/faults", _faults, ["GET", "DELETE"]),
        ("/faults/{endpoint}", _fault, ["PUT"]),
        ("/webhooks", _webhooks, ["GET"]),
        ("/webhooks/switches", _switches, ["PUT"]),
        ("/webhooks/deliveries", _deliveries, ["GET"]),
        ("/webhooks/settle", _settle, ["POST"]),
        ("/webhooks/send", _send, ["POST"]),
    ]
    return [Route(f"/_sim{path}", _handler(fn), methods=methods) for path, fn, methods in routes]
