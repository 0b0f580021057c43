"""Configuration of the WHOOP simulator, read once from the environment (prefix ``SIMULATOR_``).

The app registration itself (client id, secret, redirect URIs, webhook URL) is *not* here: the
simulator registers its app from :class:`infra.settings.WhoopAppSettings`, the same object the
pipeline reads, so that both sides always agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from infra.http_limits import HttpServerSettings
from infra.settings import host_field, log_level_field, port_field

__all__ = ["SimulatorSettings"]


class SimulatorSettings(HttpServerSettings):
    """Every knob of the simulator; the defaults serve ``python -m simulator`` on a dev machine."""

    model_config = SettingsConfigDict(env_prefix="SIMULATOR_", frozen=True, extra="ignore", env_file=None)

    host: str = host_field("Interface the HTTP server binds to.")
    port: int = port_field(8100, "TCP port of the HTTP server.")
    log_level: str = log_level_field("simulator")

    seed: int = Field(
        default=42, description="Seed of every random choice: same seed, same members and data."
    )
    members: int = Field(default=5, ge=0, le=10_000, description="Members generated at start-up.")
    days: int = Field(default=30, ge=1, le=3650, description="Days of history generated per member.")
    history_end: str = Field(
        default="2025-11-10",
        description="Local date of the last night of generated history (YYYY-MM-DD), or 'today'. "
        "The default window covers the EU (Oct 26) and US (Nov 2) DST changes of 2025.",
    )

    token_lifetime_s: int = Field(
        default=3600, ge=1, description="Access-token lifetime (expires_in), seconds."
    )
    code_ttl_s: int = Field(
        default=600, ge=1, description="Authorization-code lifetime, seconds (Hydra: 10 min)."
    )
    oauth_mode: Literal["approve", "deny"] = Field(
        default="approve",
        description="approve: the authorize URL auto-approves a member; deny: access_denied.",
    )
    token_basic_auth: bool = Field(
        default=True, description="Also accept HTTP Basic client authentication at the token endpoint."
    )

    quota_enabled: bool = Field(
        default=True, description="Enforce the per-app quota (429); off for benchmarks."
    )
    quota_per_minute: int = Field(default=100, ge=1, description="Requests per app per 60-second window.")
    quota_per_day: int = Field(default=10_000, ge=1, description="Requests per app per 86,400-second window.")

    time_scale: float = Field(
        default=1.0,
        gt=0,
        description="Speed-up of scheduled delays (webhook retries, late scoring): 60 = 1 h in 1 min.",
    )

    missing_scope_status: Literal[401, 403] = Field(
        default=401, description="Status for a token lacking the scope."
    )
    over_max_limit: Literal["reject", "clamp"] = Field(
        default="reject", description="limit > 25: 'reject' answers 400, 'clamp' serves 25."
    )
    end_of_list: Literal["null", "omit", "empty"] = Field(
        default="null", description="How the last page shows the end: next_token null, absent or ''."
    )
    unscored_score: Literal["omit", "null"] = Field(
        default="omit", description="Unscored records omit 'score' or carry 'score': null."
    )
    current_cycle_state: Literal["SCORED", "PENDING_SCORE"] = Field(
        default="SCORED", description="score_state of the open (current) cycle."
    )
    include_sport_id: bool = Field(default=True, description="Workouts carry the deprecated sport_id.")

    webhooks_enabled: bool = Field(default=True, description="Send webhooks to WHOOP_WEBHOOK_URL.")
    webhook_model: Literal["v2", "v1"] = Field(default="v2", description="Webhook model version of the URL.")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Delivery timeout per attempt, seconds.")
    webhook_retry_delays_s: Annotated[tuple[float, ...], NoDecode] = Field(
        default=(30.0, 120.0, 420.0, 1200.0, 1800.0),
        description="Delays before each retry (5 retries over about an hour), before time scaling.",
    )
    webhook_resign_retries: bool = Field(
        default=True, description="Retries carry a fresh timestamp and signature."
    )
    webhook_duplicate_rate: float = Field(
        default=0.0, ge=0, le=1, description="Chance an event is sent twice."
    )
    webhook_drop_rate: float = Field(default=0.0, ge=0, le=1, description="Chance an event is never sent.")
    webhook_reorder: bool = Field(
        default=False, description="Deliver the events of one change in shuffled order."
    )

    fault_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a 'timeout' fault holds a request."
    )
    control_enabled: bool = Field(default=True, description="Serve the control API under /_sim.")

    @field_validator("history_end")
    @classmethod
    def _check_history_end(cls, value: str) -> str:
        if value != "today":
            dt.date.fromisoformat(value)
        return value

    @field_validator("webhook_retry_delays_s", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(float(item) for item in value.split(",") if item.strip())
        return value

    def history_end_date(self, today: dt.date) -> dt.date:
        """The configured last night of history, resolving ``today`` against the given date."""
        return today if self.history_end == "today" else dt.date.fromisoformat(self.history_end)
