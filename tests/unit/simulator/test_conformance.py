"""Conformance: the §14 examples validate against the simulator's schemas, and so does all it serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from simulator.quota import Quota
from simulator.signing import sign
from tests.support import whoop_models as models

from .conftest import Harness

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "whoop"
SECRET = "sim-client-secret-DO-NOT-USE-7f3a9c"

EXAMPLES: dict[str, type[BaseModel]] = {
    "token_response.json": models.TokenResponse,
    "token_error.json": models.TokenError,
    "user_profile_basic.json": models.UserBasicProfile,
    "user_measurement_body.json": models.UserBodyMeasurement,
    "cycle_scored.json": models.Cycle,
    "cycle_collection_page.json": models.PaginatedCycleResponse,
    "sleep_main_scored.json": models.Sleep,
    "sleep_nap_scored.json": models.Sleep,
    "sleep_pending.json": models.Sleep,
    "recovery_scored.json": models.Recovery,
    "recovery_collection_last_page.json": models.RecoveryCollection,
    "workout_running.json": models.WorkoutV2,
    "workout_collection_last_page.json": models.WorkoutCollection,
    "activity_mapping.json": models.ActivityMapping,
    "webhook_workout_updated.json": models.WebhookBody,
    "webhook_workout_deleted.json": models.WebhookBody,
    "webhook_sleep_updated.json": models.WebhookBody,
    "webhook_recovery_updated.json": models.WebhookBody,
    "webhook_sleep_deleted.json": models.WebhookBody,
    "webhook_recovery_deleted.json": models.WebhookBody,
    "webhook_v1_recovery_updated.json": models.WebhookBody,
}


def test_every_fixture_has_a_schema() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.json")}
    assert on_disk == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_validates(name: str) -> None:
    EXAMPLES[name].model_validate_json((FIXTURES / name).read_bytes())


def test_schemas_are_strict_about_types_and_unknown_fields() -> None:
    recovery = json.loads((FIXTURES / "recovery_scored.json").read_text())
    recovery["score"]["recovery_score"] = 68  # an int where WHOOP writes 68.0
    with pytest.raises(ValidationError):
        models.Recovery.model_validate_json(json.dumps(recovery))
    cycle = json.loads((FIXTURES / "cycle_scored.json").read_text())
    cycle["surprise"] = 1
    with pytest.raises(ValidationError):
        models.Cycle.model_validate_json(json.dumps(cycle))
    workout = json.loads((FIXTURES / "workout_running.json").read_text())
    workout["score"]["zone_duration"] = workout["score"].pop("zone_durations")  # the v1 name
    with pytest.raises(ValidationError):
        models.WorkoutV2.model_validate_json(json.dumps(workout))


def test_signed_webhook_example_matches_the_test_vector() -> None:
    raw = (FIXTURES / "webhook_signed_body.bin").read_bytes()
    assert len(raw) == 135
    assert sign(SECRET, "1760437512345", raw) == "C4mngIuOQxxPdQz+jf3Vi5eQQGnLRVp8AgPh61gkw1k="
    models.WebhookBody.model_validate_json(raw)


def test_rate_limit_example_header_shapes_match_ours() -> None:
    text = (FIXTURES / "rate_limited_429.http").read_text()
    example = dict(line.split(": ", 1) for line in text.splitlines()[1:5])

    class _Clock:
        def now_ms(self) -> int:
            return 1_760_437_512_345

    ours = Quota(_Clock(), per_minute=100, per_day=10_000, enabled=True).reject("app").headers
    assert ours["X-RateLimit-Limit"] == example["X-RateLimit-Limit"]
    assert ours["X-RateLimit-Remaining"] == example["X-RateLimit-Remaining"] == "0"
    assert ours["X-RateLimit-Reset"].isdigit() and 1 <= int(ours["X-RateLimit-Reset"]) <= 60


async def test_every_served_document_validates(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    collections: dict[str, type[BaseModel]] = {
        "/developer/v2/cycle": models.PaginatedCycleResponse,
        "/developer/v2/activity/sleep": models.PaginatedSleepResponse,
        "/developer/v2/recovery": models.RecoveryCollection,
        "/developer/v2/activity/workout": models.WorkoutCollection,
    }
    for path, model in collections.items():
        raw = (await harness.get(path, token, limit=25)).content
        model.model_validate_json(raw)
        assert json.loads(raw)["records"], path
    assert models.UserBasicProfile.model_validate_json(
        (await harness.get("/developer/v2/user/profile/basic", token)).content
    )
    assert models.UserBodyMeasurement.model_validate_json(
        (await harness.get("/developer/v2/user/measurement/body", token)).content
    )
    token_body = await harness.connect()
    models.TokenResponse.model_validate(token_body)


def test_every_generated_document_validates(harness: Harness) -> None:
    store = harness.sim.store
    for entry in store.cycles.values():
        models.Cycle.model_validate_json(entry.body)
    for entry in store.sleeps.values():
        models.Sleep.model_validate_json(entry.body)
    for entry in store.recoveries.values():
        models.Recovery.model_validate_json(entry.body)
    for entry in store.workouts.values():
        models.WorkoutV2.model_validate_json(entry.body)
    assert len(store.cycles) == 3 * 20
