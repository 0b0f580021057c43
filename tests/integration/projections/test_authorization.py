"""Authorization sweep over every route of the query API: only the member (or a scoped admin) reads a member.

The sweep is built from ``query_routes()`` itself, so a route added later is swept too (or the test
fails for want of an example). For each route, on Bob's data: no token, malformed and unknown
tokens, and a revoked token answer 401; Alice's token answers 404 without a byte of Bob's data;
Bob's token and an admin ``read`` token answer 200; an admin ``status`` token reads only the sync status.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from starlette.routing import Route

from infra.vault import ApiTokens
from projections.query.api import query_routes
from tests.integration.projections.conftest import ADMIN_READ, ADMIN_STATUS, ApiHarness
from tests.integration.projections.helpers import apply_batches
from tests.unit.projections.factory import T0, Member, history

ALICE = Member(482913)
BOB = Member(777001)


def _examples(bob_days: list) -> dict[str, str]:  # type: ignore[type-arg]
    day = next(d for d in bob_days if d.workout is not None)
    ids = {
        "recovery": str(day.recovery.cycle_id),
        "sleep": day.sleep.sleep_id,
        "workouts": day.workout.workout_id,
        "cycles": str(day.cycle.cycle_id),
    }
    examples: dict[str, str] = {}
    for route in query_routes():
        assert isinstance(route, Route)
        path = route.path
        if path == "/openapi.json":
            continue
        url = path.replace("{user_id}", BOB.user_id)
        if "{record_id}" in url:
            kind = path.split("/")[-2]
            url = url.replace("{record_id}", ids[kind])
        elif path.endswith("/metrics"):
            url += "?start=2025-09-01T00:00:00Z&end=2025-11-01T00:00:00Z"
        examples[path] = url
    return examples


async def test_no_route_lets_a_token_read_another_members_data(api: ApiHarness) -> None:
    bob_days = history(BOB, 10, start=T0 - timedelta(days=5))
    await apply_batches(api.pool, [[r for d in bob_days for r in d.records()]])
    await apply_batches(api.pool, [[r for d in history(ALICE, 3) for r in d.records()]])
    examples = _examples(bob_days)
    documented = {r.path for r in query_routes() if isinstance(r, Route)} - {"/openapi.json"}
    assert set(examples) == documented and len(examples) == 4 * 5 + 3

    revoked = await ApiTokens().issue(api.pool, BOB.user_id)
    await ApiTokens().revoke(api.pool, revoked.token_id)
    bob_token = await api.token_for(BOB.user_id)
    alice_token = await api.token_for(ALICE.user_id)
    bob_secrets = [str(BOB.whoop_user_id), bob_days[0].sleep.sleep_id, str(bob_days[0].cycle.cycle_id)]

    for template, url in examples.items():
        unauthenticated: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer "},
            {"Authorization": f"Basic {bob_token}"},
            {"Authorization": "Bearer wpt_not-a-real-token"},
            {"Authorization": "Bearer not-even-our-prefix"},
            {"Authorization": f"Bearer {revoked.token}"},
            {"Authorization": f"Bearer {bob_token}x"},
            {"Authorization": "Bearer " + "a" * 300},
        ]
        for headers in unauthenticated:
            response = await api.client.get(url, headers=headers)
            assert response.status_code == 401, (template, headers, response.text)
            assert response.json()["error"]["code"] in ("unauthenticated", "invalid_token")
            assert response.headers["www-authenticate"].startswith("Bearer")
        doubled = httpx.Headers(
            [("Authorization", f"Bearer {bob_token}"), ("Authorization", f"Bearer {bob_token}")]
        )
        assert (await api.client.get(url, headers=doubled)).status_code == 401, template

        foreign = await api.client.get(url, headers={"Authorization": f"Bearer {alice_token}"})
        assert foreign.status_code == 404, (template, foreign.text)
        assert set(foreign.json()) == {"error"}
        assert not any(secret in foreign.text for secret in bob_secrets), template

        own = await api.client.get(url, headers={"Authorization": f"Bearer {bob_token}"})
        assert own.status_code == 200, (template, own.text)
        admin = await api.client.get(url, headers={"Authorization": f"Bearer {ADMIN_READ}"})
        assert admin.status_code == 200 and admin.content == own.content, template
        support = await api.client.get(url, headers={"Authorization": f"Bearer {ADMIN_STATUS}"})
        if template.endswith("/sync"):
            assert support.status_code == 200, template
        else:
            assert support.status_code == 403 and support.json()["error"]["code"] == "insufficient_scope", (
                template
            )

    # the member id is compared exactly: no case or encoding trick reaches Bob
    for variant in (BOB.user_id.upper(), BOB.user_id + "%20", f"{BOB.user_id}%2F"):
        response = await api.client.get(
            f"/v1/data/{variant}/cycles", headers={"Authorization": f"Bearer {alice_token}"}
        )
        assert response.status_code == 404, variant


async def test_the_spec_is_public_and_everything_else_is_not(api: ApiHarness) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200 and response.json()["openapi"] == "3.1.0"
