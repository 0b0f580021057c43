"""Logging of every process: one JSON-lines schema (or a readable console), with the trace of the work.

``configure_logging(stage, fmt)`` is called once by each ``__main__`` (ADR 0009). Every line then has
the same fields, whichever process wrote it::

    {"ts": "2026-12-05T12:00:00.123Z", "level": "INFO", "stage": "processors",
     "logger": "processors.worker", "msg": "...", "trace_id": "...", "user_id": "...", "exc": "..."}

``ts`` is RFC 3339 UTC with milliseconds; ``trace_id`` (WHOOP's webhook trace id, carried in the Kafka
header ``trace_id`` from stage to stage) and ``user_id`` (our own user id, never WHOOP's) appear when
known; ``exc`` when the line carries an exception. The console format is the readable one of
``make run``: ``<time> <LEVEL> <logger> <message>``, then `` trace_id=... user_id=...`` when set.

What a line is about comes from the context: ``trace_context(trace_id, user_id=...)`` sets it for the
work on one record (a request, a task, a batch's record), and every line logged inside carries it. A
per-record line in a hot loop passes them as ``extra={"trace_id": ..., "user_id": ...}`` instead.
Per-record progress lines go to loggers under ``records.`` (``progress_logger``), enabled by
``LOG_RECORDS``; callers in a hot loop ask ``isEnabledFor(logging.INFO)`` once per batch.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import Literal, NamedTuple

import orjson
from pydantic import Field

from infra.settings import ServiceSettings

__all__ = [
    "RECORDS",
    "TRACE_HEADER",
    "ConsoleFormatter",
    "JsonFormatter",
    "LogFormat",
    "LogSettings",
    "Trace",
    "TraceFilter",
    "configure_logging",
    "current_trace",
    "header_value",
    "log_record",
    "progress_logger",
    "trace_context",
    "trace_header",
]

LogFormat = Literal["json", "console"]
RECORDS = "records"
"""Parent of the per-record progress loggers (``LOG_RECORDS`` turns them on)."""
TRACE_HEADER = "trace_id"
"""The Kafka header that carries the trace id from the webhook to the document and the record."""


class LogSettings(ServiceSettings):
    """How every process logs (shared, unprefixed names)."""

    log_format: LogFormat = Field(
        default="json",
        description="Log line format: json (one JSON object a line, one schema across processes) or "
        "console (readable; `make run` uses it).",
    )
    log_records: bool = Field(
        default=False,
        description="Also log one INFO line per record at each stage (trace id, user id, type, resource "
        "id; never health values): a webhook's trace can then be followed through every stage.",
    )


class Trace(NamedTuple):
    """What the current work is about: WHOOP's trace id and our user id, when known."""

    trace_id: str | None
    user_id: str | None = None


_TRACE: ContextVar[Trace | None] = ContextVar("trace", default=None)


def current_trace() -> Trace | None:
    """The trace of the work at hand, if one was set."""
    return _TRACE.get()


class _TraceContext:
    """A plain context manager (not a generator: the edge enters one per webhook)."""

    __slots__ = ("_token", "trace")

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    _token: Token[Trace | None]

    def __enter__(self) -> Trace:
        self._token = _TRACE.set(self.trace)
        return self.trace

    def __exit__(self, *exc: object) -> None:
        _TRACE.reset(self._token)


def trace_context(trace_id: str | None, *, user_id: str | None = None) -> AbstractContextManager[Trace]:
    """Every line logged inside the ``with`` block carries ``trace_id`` and ``user_id`` (restored after)."""
    return _TraceContext(Trace(trace_id, user_id))


def trace_header(trace_id: str | None) -> tuple[tuple[str, bytes], ...]:
    """The Kafka headers that carry ``trace_id`` (none when there is no trace id)."""
    return () if not trace_id else ((TRACE_HEADER, trace_id.encode()),)


def header_value(headers: object, name: str = TRACE_HEADER) -> str | None:
    """The value of header ``name`` in a consumed record's headers (``[(name, bytes)]``), if any."""
    if not headers:
        return None
    for key, value in headers:  # type: ignore[attr-defined] # aiokafka's headers: a sequence of pairs
        if key == name and value is not None:
            return bytes(value).decode("utf-8", "replace")
    return None


def progress_logger(name: str) -> logging.Logger:
    """The per-record progress logger of module ``name`` (``records.<name>``; on with ``LOG_RECORDS``)."""
    return logging.getLogger(f"{RECORDS}.{name}")


def log_record(log: logging.Logger, what: str, key: bytes | None, trace_id: str | None) -> None:
    """One progress line about the record keyed ``key`` (``<user>:<type>:<id>``), never its value:
    ``<what>: <type> <id>`` with the trace id and the key's user id."""
    parts = (key or b"").decode("utf-8", "replace").split(":", 2)
    user_id, kind, resource_id = parts if len(parts) == 3 else (None, "?", "?")
    log.info("%s: %s %s", what, kind, resource_id, extra={"trace_id": trace_id, "user_id": user_id})


class TraceFilter(logging.Filter):
    """Puts the current trace on every record (``trace_id``, ``user_id``) unless ``extra`` gave them."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = _TRACE.get()
        if not hasattr(record, "trace_id"):
            record.trace_id = None if trace is None else trace.trace_id
        if not hasattr(record, "user_id"):
            record.user_id = None if trace is None else trace.user_id
        return True


def _timestamp(record: logging.LogRecord) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{whole}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object a line, the schema of the module docstring."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self._stage = stage

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "stage": self._stage,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace_id, user_id = getattr(record, "trace_id", None), getattr(record, "user_id", None)
        if trace_id is not None:
            entry["trace_id"] = str(trace_id)
        if user_id is not None:
            entry["user_id"] = str(user_id)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """The readable format: ``<time> <LEVEL> <logger> <message>``, the trace appended when set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        trace_id, user_id = getattr(record, "trace_id", None), getattr(record, "user_id", None)
        if trace_id is not None:
            line += f" trace_id={trace_id}"
        if user_id is not None:
            line += f" user_id={user_id}"
        return line


def configure_logging(
    stage: str,
    fmt: LogFormat,
    *,
    level: str | int = "INFO",
    records: bool = False,
    handler: logging.Handler | None = None,
) -> logging.Handler:
    """Log every line of this process in ``fmt`` to ``handler`` (stderr by default); returns it.

    Replaces the root logger's handlers (once per process, in ``__main__``). ``records`` turns on
    the per-record progress lines (``progress_logger``); they stay off below INFO otherwise.
    """
    target = handler if handler is not None else logging.StreamHandler(sys.stderr)
    target.setFormatter(JsonFormatter(stage) if fmt == "json" else ConsoleFormatter())
    target.addFilter(TraceFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(target)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.getLogger(RECORDS).setLevel(logging.INFO if records else logging.WARNING)
    return target
