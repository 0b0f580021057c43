"""Fault injection per endpoint: 5xx, latency, timeouts and forced 429s, switched on via the control API.

A rule applies to one endpoint name (see :data:`ENDPOINTS`) or to all (``"*"``); it fires with a
probability (``rate``, drawn from a seeded RNG so runs repeat) and optionally only ``count`` times.
Expired access tokens and failing refreshes are OAuth hooks (see :mod:`simulator.oauth`).
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ENDPOINTS", "FaultRule", "Faults"]

ENDPOINTS = (
    "cycle.list",
    "cycle.get",
    "cycle.sleep",
    "cycle.recovery",
    "recovery.list",
    "sleep.list",
    "sleep.get",
    "workout.list",
    "workout.get",
    "profile",
    "body",
    "access.delete",
    "activity_mapping",
    "token",
)


class FaultRule(BaseModel):
    """What to do to matching requests. Several effects combine: latency first, then the rest."""

    model_config = ConfigDict(extra="forbid")

    status: Literal[500, 502, 503, 504] | None = Field(default=None, description="Answer with this 5xx.")
    latency_ms: int = Field(default=0, ge=0, description="Delay before answering.")
    timeout: bool = Field(default=False, description="Hold the request for fault_timeout_s, then 504.")
    force_429: bool = Field(default=False, description="Answer 429 as if the quota were exhausted.")
    rate: float = Field(default=1.0, ge=0, le=1, description="Probability that the rule fires.")
    count: int | None = Field(default=None, ge=1, description="Fire only this many times, then vanish.")


class Faults:
    """The active rules, by endpoint name."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.rules: dict[str, FaultRule] = {}

    def set(self, endpoint: str, rule: FaultRule) -> None:
        """Install (or replace) the rule of an endpoint; ``KeyError`` for an unknown name."""
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise KeyError(endpoint)
        self.rules[endpoint] = rule

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def draw(self, endpoint: str) -> FaultRule | None:
        """The rule that fires for this request, if any (consumes one ``count``)."""
        if not self.rules:
            return None
        for name in (endpoint, "*"):
            rule = self.rules.get(name)
            if rule is None or (rule.rate < 1.0 and self._rng.random() >= rule.rate):
                continue
            if rule.count is not None:
                if rule.count <= 1:
                    del self.rules[name]
                else:
                    self.rules[name] = rule.model_copy(update={"count": rule.count - 1})
            return rule
        return None

    def snapshot(self) -> dict[str, Any]:
        """The active rules as JSON."""
        return {name: rule.model_dump() for name, rule in self.rules.items()}
