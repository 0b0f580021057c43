"""Language-neutral JSON Schema documents of our events, rendered from the models.

``python -m deploy schemas write`` writes them to ``schemas/json/``; ``check`` fails when a file
is missing, stale or extra, which CI runs (``make schemas-check``) so the published contract
never drifts from the code.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel

from schemas.events import EVENT_TYPES, DeadLetter
from schemas.records import RECORD_TYPES

__all__ = ["GENERATED", "render_all"]

GENERATED = "GENERATED from schemas/events.py and schemas/records.py by `make schemas`; do not edit."


def _render(model: type[BaseModel]) -> bytes:
    schema = {"$comment": GENERATED, **model.model_json_schema()}
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def render_all() -> dict[str, bytes]:
    """File name → content for every event model and the dead-letter record."""
    models: list[type[BaseModel]] = [*EVENT_TYPES.values(), *RECORD_TYPES.values(), DeadLetter]
    return {f"{model.__name__}.schema.json": _render(model) for model in models}
