"""Scripted changes to a member's data, mirroring WHOOP's webhook test recipe (§10.3, §13).

Each operation mutates the :class:`~simulator.store.Store` and returns the webhook events it
causes: a new workout (``workout.updated``), a new main sleep that opens a new cycle (``sleep.updated``,
then after scoring ``sleep.updated`` + ``recovery.updated``), an edited sleep (both events), deletes
(``*.deleted``; deleting a sleep deletes its recovery) and late scoring (``PENDING_SCORE`` →
``SCORED`` or ``UNSCORABLE``). Times come from the injected clock; randomness from a seeded RNG.

As at WHOOP, the day's records hang together: a scored (or deleted) workout rescores its cycle,
whose strain and energy grow with the workouts' load (``physiology.cycle_score``; no webhook, there
is none for cycles), and a nap lowers the next main sleep's need (``need_from_recent_nap_milli``).
"""

from __future__ import annotations

import random
from typing import Any, Literal

from simulator.clock import Clock
from simulator.generator import Member, new_uuid, offset_at
from simulator.physiology import (
    SPORTS,
    cycle_score,
    load_from_strain,
    recovery_score,
    sleep_score,
    workout_score,
)
from simulator.store import Store
from simulator.timefmt import format_ms, parse_query_datetime
from simulator.webhooks import WebhookEvent

__all__ = ["ScenarioError", "Scenarios", "Scoring"]

Json = dict[str, Any]
Scoring = Literal["scored", "pending", "unscorable"]
_MIN = 60_000
_HOUR = 3_600_000


class ScenarioError(Exception):
    """A scenario that cannot apply (unknown member or record, impossible timing)."""


class Scenarios:
    """The scripted mutations."""

    def __init__(self, store: Store, rng: random.Random, clock: Clock) -> None:
        self._store = store
        self._rng = rng
        self._clock = clock
        self._cycle_workouts: dict[int, set[str]] = {}  # cycle id -> the workouts it holds
        self._nap_sleep: dict[int, float] = {}  # cycle id -> ms its naps count against the next need
        self._closed_by: dict[str, int] = {}  # main sleep id -> the cycle it closed

    def _member(self, user_id: int) -> Member:
        member = self._store.members.get(user_id)
        if member is None:
            raise ScenarioError(f"unknown member {user_id}")
        return member

    def trace_id(self) -> str:
        """A fresh ``trace_id``."""
        return new_uuid(self._rng)

    def _event(self, user_id: int, event_type: str, ident: str, v1_id: int | None = None) -> WebhookEvent:
        return WebhookEvent(user_id, event_type, ident, new_uuid(self._rng), v1_id)

    def new_workout(
        self, user_id: int, *, sport_name: str | None, scoring: Scoring
    ) -> tuple[Json, list[WebhookEvent]]:
        """A workout that just ended; ``workout.updated``."""
        member = self._member(user_id)
        sport = next((s for s in SPORTS if s.name == sport_name), None) or self._rng.choice(SPORTS)
        now = self._clock.now_ms()
        duration = round(self._rng.uniform(*sport.minutes) * _MIN)
        end = now - self._rng.randint(_MIN, 3 * _MIN)
        start = end - duration
        score, _ = workout_score(self._rng, member.baseline, sport, duration)
        doc: Json = {
            "id": new_uuid(self._rng),
            "v1_id": None,
            "user_id": user_id,
            "created_at": format_ms(now),
            "updated_at": format_ms(now),
            "start": format_ms(start),
            "end": format_ms(end),
            "timezone_offset": offset_at(member.home_zone, start),
            "sport_name": sport.name,
            "score_state": _state(scoring),
            "score": score if scoring == "scored" else None,
            "sport_id": sport.sport_id,
        }
        self._store.put_workout(doc)
        self._workouts_of(member, member.last_cycle_id).add(doc["id"])
        if doc["score"] is not None:
            self._rescore_cycle(member, member.last_cycle_id)
        return doc, [self._event(user_id, "workout.updated", doc["id"])]

    def new_sleep(self, user_id: int, *, nap: bool, scoring: Scoring) -> tuple[Json, list[WebhookEvent]]:
        """A sleep that just ended; a main sleep closes the current cycle and opens a new one."""
        member = self._member(user_id)
        now = self._clock.now_ms()
        in_bed = (
            round(self._rng.uniform(0.3, 1.0) * _HOUR) if nap else round(self._rng.uniform(6.0, 8.5) * _HOUR)
        )
        end = now - self._rng.randint(2 * _MIN, 6 * _MIN)
        start = end - in_bed
        current = self._store.cycles.get(member.last_cycle_id)
        if current is None or parse_query_datetime(current.doc["start"]) >= start:
            raise ScenarioError("a new sleep must start after the current cycle started")
        cycle_id = member.last_cycle_id
        offset = offset_at(member.home_zone, start)
        if not nap:
            cycle_id = self._open_cycle(member, current.doc, start, now)
        doc: Json = {
            "id": new_uuid(self._rng),
            "cycle_id": cycle_id,
            "v1_id": None,
            "user_id": user_id,
            "created_at": format_ms(now),
            "updated_at": format_ms(now),
            "start": format_ms(start),
            "end": format_ms(end),
            "timezone_offset": offset,
            "nap": nap,
            "score_state": "PENDING_SCORE",
            "score": None,
        }
        self._store.put_sleep(doc)
        if not nap:
            self._closed_by[doc["id"]] = current.doc["id"]
            self._store.put_recovery(
                {
                    "cycle_id": cycle_id,
                    "sleep_id": doc["id"],
                    "user_id": user_id,
                    "created_at": doc["created_at"],
                    "updated_at": doc["updated_at"],
                    "score_state": "PENDING_SCORE",
                    "score": None,
                }
            )
        events = [self._event(user_id, "sleep.updated", doc["id"])]
        if scoring != "pending":
            events += self.complete_scoring(
                "sleep", doc["id"], "SCORED" if scoring == "scored" else "UNSCORABLE"
            )
        return self._store.sleeps[doc["id"]].doc, events

    def _open_cycle(self, member: Member, current: Json, start: int, now: int) -> int:
        """Close the current cycle at ``start`` (a main sleep began) and open the next; its id.

        The workouts that started after the sleep began move to the new cycle; both are rescored."""
        self._store.put_cycle(dict(current, end=format_ms(start), updated_at=format_ms(now)))
        closed_workouts = self._workouts_of(member, current["id"])
        later = {
            ident
            for ident in closed_workouts
            if (w := self._store.workouts.get(ident)) is not None
            and parse_query_datetime(w.doc["start"]) >= start
        }
        closed_workouts -= later  # what started after the sleep began is the new cycle's
        self._rescore_cycle(member, current["id"])
        cycle_id = member.last_cycle_id + self._rng.randint(1, 200)
        member.last_cycle_id = cycle_id
        self._store.put_cycle(
            {
                "id": cycle_id,
                "user_id": member.user_id,
                "created_at": format_ms(now),
                "updated_at": format_ms(now),
                "start": format_ms(start),
                "end": None,
                "timezone_offset": offset_at(member.home_zone, start),
                "score_state": "SCORED",
                "score": self._cycle_score(member, max(now - start, _HOUR)),
            }
        )
        self._cycle_workouts[cycle_id] = later
        if later:
            self._rescore_cycle(member, cycle_id)
        return cycle_id

    def _cycle_score(self, member: Member, duration_ms: int) -> Json:
        return cycle_score(self._rng, member.baseline, duration_ms, [])

    def _workouts_of(self, member: Member, cycle_id: int) -> set[str]:
        """The workouts of a cycle: those added here, and those of the history that fall in it."""
        held = self._cycle_workouts.get(cycle_id)
        if held is None:
            cycle = self._store.cycles[cycle_id].doc
            start = parse_query_datetime(cycle["start"])
            end = parse_query_datetime(cycle["end"]) if cycle["end"] else None
            held = {
                w["id"]
                for w in member.workouts
                if start <= parse_query_datetime(w["start"])
                and (end is None or parse_query_datetime(w["start"]) < end)
            }
            self._cycle_workouts[cycle_id] = held
        return held

    def _rescore_cycle_of(self, member: Member, workout_id: str, *, removed: bool = False) -> None:
        """Rescore the cycle holding a workout that changed (``removed``: it leaves the cycle first)."""
        for cycle_id, held in self._cycle_workouts.items():
            if workout_id in held:
                if removed:
                    held.discard(workout_id)
                self._rescore_cycle(member, cycle_id)
                return

    def _rescore_cycle(self, member: Member, cycle_id: int) -> None:
        """The cycle's score from its length so far and its scored workouts (strains do not add: load does).

        The resting part is drawn from an RNG seeded by the cycle, so rescoring moves the strain only
        by what the workouts change.
        """
        entry = self._store.cycles.get(cycle_id)
        if entry is None:
            return
        doc = entry.doc
        now = self._clock.now_ms()
        start = parse_query_datetime(doc["start"])
        end = parse_query_datetime(doc["end"]) if doc["end"] else now
        workouts = [
            (w.doc["score"], load_from_strain(w.doc["score"]["strain"]))
            for ident in sorted(self._workouts_of(member, cycle_id))
            if (w := self._store.workouts.get(ident)) is not None and w.doc["score"] is not None
        ]
        score = cycle_score(random.Random(cycle_id), member.baseline, max(end - start, _HOUR), workouts)  # noqa: S311
        self._store.put_cycle(dict(doc, score_state="SCORED", score=score, updated_at=format_ms(now)))

    def edit_sleep(self, sleep_id: str, shift_minutes: int) -> list[WebhookEvent]:
        """The member moves a sleep's end: ``sleep.updated`` (+ ``recovery.updated`` for a main sleep)."""
        entry = self._store.sleeps.get(sleep_id)
        if entry is None:
            raise ScenarioError(f"unknown sleep {sleep_id}")
        doc = dict(entry.doc)
        member = self._member(doc["user_id"])
        start = parse_query_datetime(doc["start"])
        end = parse_query_datetime(doc["end"]) + shift_minutes * _MIN
        if end <= start + 5 * _MIN:
            raise ScenarioError("the edited sleep would be empty")
        if end > self._clock.now_ms():
            raise ScenarioError("the edited sleep would end after now")
        now = format_ms(self._clock.now_ms())
        doc.update(end=format_ms(end), updated_at=now)
        if doc["score"] is not None:
            doc["score"] = sleep_score(
                self._rng,
                member.baseline,
                end - start,
                doc["score"]["sleep_needed"],
                nap=doc["nap"],
                first=False,
            )
        self._store.put_sleep(doc)
        events = [self._event(doc["user_id"], "sleep.updated", sleep_id)]
        recovery = self._store.recoveries.get(doc["cycle_id"])
        if recovery is not None and recovery.doc["sleep_id"] == sleep_id:
            self._store.put_recovery(dict(recovery.doc, updated_at=now))
            events.append(self._event(doc["user_id"], "recovery.updated", sleep_id, doc["cycle_id"]))
        return events

    def edit_workout(self, workout_id: str) -> list[WebhookEvent]:
        """The member edits a workout (re-scored): ``workout.updated``."""
        entry = self._store.workouts.get(workout_id)
        if entry is None:
            raise ScenarioError(f"unknown workout {workout_id}")
        doc = dict(entry.doc, updated_at=format_ms(self._clock.now_ms()))
        if doc["score"] is not None:
            doc["score"] = dict(doc["score"], strain=round(min(21.0, doc["score"]["strain"] * 1.05), 4))
        self._store.put_workout(doc)
        self._rescore_cycle_of(self._member(doc["user_id"]), workout_id)
        return [self._event(doc["user_id"], "workout.updated", workout_id)]

    def delete(self, kind: str, ident: str) -> list[WebhookEvent]:
        """Delete a workout or a sleep (and its recovery): the ``*.deleted`` events."""
        if kind == "workout":
            workout = self._store.delete_workout(ident)
            if workout is None:
                raise ScenarioError(f"unknown workout {ident}")
            self._rescore_cycle_of(self._member(workout.doc["user_id"]), ident, removed=True)
            return [self._event(workout.doc["user_id"], "workout.deleted", ident)]
        if kind == "sleep":
            sleep, recovery = self._store.delete_sleep(ident)
            if sleep is None:
                raise ScenarioError(f"unknown sleep {ident}")
            events = [self._event(sleep.doc["user_id"], "sleep.deleted", ident)]
            if recovery is not None:
                events.append(
                    self._event(sleep.doc["user_id"], "recovery.deleted", ident, recovery.doc["cycle_id"])
                )
            return events
        raise ScenarioError(f"cannot delete a {kind}")

    def complete_scoring(self, kind: str, ident: str, outcome: str) -> list[WebhookEvent]:
        """``PENDING_SCORE`` → ``SCORED`` or ``UNSCORABLE`` for a workout or a sleep (and its recovery)."""
        if outcome not in ("SCORED", "UNSCORABLE"):
            raise ScenarioError(f"bad outcome {outcome}")
        now = format_ms(self._clock.now_ms())
        if kind == "workout":
            return self._score_workout(ident, outcome, now)
        if kind != "sleep":
            raise ScenarioError(f"cannot score a {kind}")
        entry = self._store.sleeps.get(ident)
        if entry is None or entry.doc["score_state"] != "PENDING_SCORE":
            raise ScenarioError(f"no pending sleep {ident}")
        doc = dict(entry.doc, score_state=outcome, updated_at=now)
        member = self._member(doc["user_id"])
        start, end = parse_query_datetime(doc["start"]), parse_query_datetime(doc["end"])
        need = {
            "baseline_milli": member.baseline.sleep_need_milli,
            "need_from_sleep_debt_milli": 0,
            "need_from_recent_strain_milli": 0,
            "need_from_recent_nap_milli": -int(self._nap_sleep.get(self._closed_by.get(ident, -1), 0.0)),
        }
        scored = outcome == "SCORED"
        doc["score"] = (
            sleep_score(self._rng, member.baseline, end - start, need, nap=doc["nap"], first=False)
            if scored
            else None
        )
        self._store.put_sleep(doc)
        if doc["nap"] and scored:
            stages = doc["score"]["stage_summary"]
            asleep = stages["total_in_bed_time_milli"] - stages["total_awake_time_milli"]
            self._nap_sleep[doc["cycle_id"]] = self._nap_sleep.get(doc["cycle_id"], 0.0) + asleep * 0.7
        events = [self._event(doc["user_id"], "sleep.updated", ident)]
        recovery = self._store.recoveries.get(doc["cycle_id"])
        if recovery is not None and recovery.doc["sleep_id"] == ident:
            performance = doc["score"]["sleep_performance_percentage"] if scored else 0.0
            score = recovery_score(
                self._rng, member.baseline, previous_strain=10.0, performance=performance, calibrating=False
            )
            self._store.put_recovery(
                dict(recovery.doc, score_state=outcome, updated_at=now, score=score if scored else None)
            )
            events.append(self._event(doc["user_id"], "recovery.updated", ident, doc["cycle_id"]))
        return events

    def _score_workout(self, ident: str, outcome: str, now: str) -> list[WebhookEvent]:
        entry = self._store.workouts.get(ident)
        if entry is None or entry.doc["score_state"] != "PENDING_SCORE":
            raise ScenarioError(f"no pending workout {ident}")
        doc = dict(entry.doc, score_state=outcome, updated_at=now)
        member = self._member(doc["user_id"])
        sport = next((s for s in SPORTS if s.name == doc["sport_name"]), SPORTS[0])
        duration = parse_query_datetime(doc["end"]) - parse_query_datetime(doc["start"])
        doc["score"] = (
            workout_score(self._rng, member.baseline, sport, duration)[0] if outcome == "SCORED" else None
        )
        self._store.put_workout(doc)
        self._rescore_cycle_of(member, ident)
        return [self._event(doc["user_id"], "workout.updated", ident)]

    def pending(self) -> list[dict[str, str]]:
        """Every record still waiting for its score."""
        found = [
            {"kind": "sleep", "id": k}
            for k, e in self._store.sleeps.items()
            if e.doc["score_state"] == "PENDING_SCORE"
        ]
        found += [
            {"kind": "workout", "id": k}
            for k, e in self._store.workouts.items()
            if e.doc["score_state"] == "PENDING_SCORE"
        ]
        return found


def _state(scoring: Scoring) -> str:
    return {"scored": "SCORED", "pending": "PENDING_SCORE", "unscorable": "UNSCORABLE"}[scoring]
