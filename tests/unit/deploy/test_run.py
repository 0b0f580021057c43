"""``python -m deploy run`` starts its stages on the public development secrets, so with PIPELINE_ENV=dev."""

from __future__ import annotations

from deploy.run import STAGES, run_defaults, stage_env


def test_every_stage_runs_with_pipeline_env_dev_unless_the_caller_sets_it() -> None:
    for stage in STAGES:
        assert stage_env(stage, {})["PIPELINE_ENV"] == "dev"
        assert stage_env(stage, {"PIPELINE_ENV": "production"})["PIPELINE_ENV"] == "production"


def test_a_stage_default_gives_way_to_the_callers_environment() -> None:
    [simulator] = [stage for stage in STAGES if stage.name == "simulator"]
    assert stage_env(simulator, {})["SIMULATOR_HISTORY_END"] == "today"
    assert (
        stage_env(simulator, {"SIMULATOR_HISTORY_END": "2025-11-10"})["SIMULATOR_HISTORY_END"] == "2025-11-10"
    )


def test_each_run_draws_its_own_simulated_world_unless_the_caller_pins_the_seed() -> None:
    [simulator] = [stage for stage in STAGES if stage.name == "simulator"]
    assert run_defaults(7) == {"SIMULATOR_SEED": "7"}
    assert run_defaults(7) != run_defaults(8)
    # the launcher starts a stage with stage_env(stage, {**run_defaults(seed), **os.environ})
    assert stage_env(simulator, {**run_defaults(7)})["SIMULATOR_SEED"] == "7"
    assert stage_env(simulator, {**run_defaults(7), "SIMULATOR_SEED": "42"})["SIMULATOR_SEED"] == "42"


def test_every_stage_logs_readably_unless_the_caller_asks_for_json() -> None:
    for stage in STAGES:
        assert stage_env(stage, {})["LOG_FORMAT"] == "console"
        assert stage_env(stage, {"LOG_FORMAT": "json"})["LOG_FORMAT"] == "json"
