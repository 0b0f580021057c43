"""Language-neutral JSON Schema documents of our events, rendered from the msgspec types.

``python -m deploy schemas write`` writes them to ``schemas/json/``; ``check`` fails when a file
is missing, stale or extra, which CI runs (``make schemas-check``) so the published contract
never drifts from the code.
"""

from __future__ import annotations

import inspect

import msgspec
import orjson

from schemas.events import EVENT_TYPES, DeadLetter
from schemas.records import RECORD_TYPES

__all__ = ["GENERATED", "render_all"]

GENERATED = "GENERATED from schemas/events.py and schemas/records.py by `make schemas`; do not edit."


def _render(model: type[msgspec.Struct]) -> bytes:
    """The model's schema at the top level (msgspec puts it under ``$defs``), ``$comment`` first."""
    schema = msgspec.json.schema(model)
    definitions = schema.pop("$defs")
    top = definitions.pop(model.__name__)
    if "description" in top:  # the docstring, dedented whatever msgspec's version
        top["description"] = inspect.cleandoc(top["description"])
    if definitions:
        top["$defs"] = definitions
    document = {"$comment": GENERATED, **top}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def render_all() -> dict[str, bytes]:
    """File name → content for every event type and the dead-letter record."""
    models: list[type[msgspec.Struct]] = [*EVENT_TYPES.values(), *RECORD_TYPES.values(), DeadLetter]
    return {f"{model.__name__}.schema.json": _render(model) for model in models}
