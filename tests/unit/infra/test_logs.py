"""``infra.logs``: one JSON schema for every process, the readable console, the trace of the work at hand."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import orjson
import pytest
from pydantic import ValidationError

from infra.appender import traced
from infra.logs import (
    ConsoleFormatter,
    JsonFormatter,
    LogSettings,
    TraceFilter,
    configure_logging,
    current_trace,
    header_value,
    log_record,
    progress_logger,
    trace_context,
    trace_header,
)

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _record(msg: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("processors.worker", logging.INFO, __file__, 1, msg, args or ("world",), None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def _json_line(record: logging.LogRecord) -> dict[str, object]:
    TraceFilter().filter(record)
    line = JsonFormatter("processors").format(record)
    assert "\n" not in line  # one object a line
    parsed: dict[str, object] = orjson.loads(line)
    return parsed


@pytest.fixture
def root_restored() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    records_level = logging.getLogger("records").level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("records").setLevel(records_level)


def test_a_json_line_has_the_schema_and_no_trace_outside_one() -> None:
    entry = _json_line(_record())
    assert set(entry) == {"ts", "level", "stage", "logger", "msg"}
    assert TS.match(str(entry["ts"])), entry["ts"]
    assert entry["level"] == "INFO" and entry["stage"] == "processors"
    assert entry["logger"] == "processors.worker" and entry["msg"] == "hello world"


def test_the_timestamp_is_utc_with_milliseconds() -> None:
    record = _record()
    record.created, record.msecs = 1_767_225_600.042, 42.0  # 2026-01-01T00:00:00.042Z
    assert _json_line(record)["ts"] == "2026-01-01T00:00:00.042Z"


def test_lines_inside_a_trace_context_carry_its_trace_and_user() -> None:
    with trace_context("trace-9", user_id="u-1") as trace:
        assert current_trace() == trace
        entry = _json_line(_record())
    assert (entry["trace_id"], entry["user_id"]) == ("trace-9", "u-1")
    assert current_trace() is None  # restored after the block
    assert "trace_id" not in _json_line(_record())


def test_nested_contexts_restore_the_outer_one() -> None:
    with trace_context("outer", user_id="u-1"):
        with trace_context("inner"):
            assert _json_line(_record())["trace_id"] == "inner"
            assert "user_id" not in _json_line(_record())
        assert _json_line(_record())["trace_id"] == "outer"


def test_extra_fields_win_over_the_context() -> None:
    with trace_context("context-trace", user_id="u-1"):
        entry = _json_line(_record(trace_id="record-trace", user_id="u-2"))
    assert (entry["trace_id"], entry["user_id"]) == ("record-trace", "u-2")


def test_an_exception_goes_into_exc() -> None:
    error = ValueError("boom")
    exc_info = (ValueError, error, None)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), exc_info=exc_info)
    entry = _json_line(record)
    assert "ValueError: boom" in str(entry["exc"]) and entry["level"] == "ERROR"


def test_the_console_format_is_readable_with_the_trace_appended_when_set() -> None:
    formatter = ConsoleFormatter()
    plain = _record()
    TraceFilter().filter(plain)
    line = formatter.format(plain)
    assert line.endswith(" INFO processors.worker hello world") and "trace_id" not in line
    with trace_context("trace-9", user_id="u-1"):
        traced_record = _record()
        TraceFilter().filter(traced_record)
    assert formatter.format(traced_record).endswith("hello world trace_id=trace-9 user_id=u-1")


def test_configure_logging_writes_json_and_keeps_per_record_lines_off_by_default(root_restored: None) -> None:
    stream = io.StringIO()
    configure_logging("ingest", "json", level="INFO", handler=logging.StreamHandler(stream))
    progress = progress_logger("ingest.webhooks")
    assert not progress.isEnabledFor(logging.INFO)
    with trace_context("t-1", user_id="u-1"):
        logging.getLogger("ingest.webhooks").info("appended %s", "sleep.updated")
        progress.info("not written")
    [line] = stream.getvalue().splitlines()
    entry = orjson.loads(line)
    assert entry["stage"] == "ingest" and entry["msg"] == "appended sleep.updated"
    assert entry["trace_id"] == "t-1" and entry["user_id"] == "u-1"


def test_configure_logging_with_records_writes_the_per_record_lines(root_restored: None) -> None:
    stream = io.StringIO()
    configure_logging(
        "processors", "console", level="WARNING", records=True, handler=logging.StreamHandler(stream)
    )
    progress = progress_logger("processors.normalizer_runner")
    assert progress.isEnabledFor(logging.INFO)  # on although the process logs from WARNING up
    log_record(progress, "record normalized", b"u-7:sleep:abc-1", "t-2")
    assert stream.getvalue().rstrip().endswith("record normalized: sleep abc-1 trace_id=t-2 user_id=u-7")
    assert len(logging.getLogger().handlers) == 1  # the handlers of before were replaced


def test_log_record_names_type_and_id_of_an_odd_key_without_failing(root_restored: None) -> None:
    stream = io.StringIO()
    configure_logging("projections", "json", records=True, handler=logging.StreamHandler(stream))
    log_record(progress_logger("projections.runner"), "read-model row written", None, None)
    entry = orjson.loads(stream.getvalue())
    assert entry["msg"] == "read-model row written: ? ?" and "trace_id" not in entry


def test_the_trace_header_is_added_to_appends_inside_a_trace() -> None:
    assert traced(()) is None
    assert traced([("origin", b"o")]) == [("origin", b"o")]
    with trace_context("t-3"):
        assert traced(()) == [("trace_id", b"t-3")]
        assert traced([("origin", b"o")]) == [("origin", b"o"), ("trace_id", b"t-3")]
        assert traced([("trace_id", b"mine")]) == [("trace_id", b"mine")]  # the caller's wins
    with trace_context(None, user_id="u-1"):
        assert traced(()) is None


def test_header_helpers() -> None:
    assert trace_header(None) == () and trace_header("") == ()
    assert trace_header("t-4") == (("trace_id", b"t-4"),)
    assert header_value([("origin", b"o"), ("trace_id", b"t-4")]) == "t-4"
    assert header_value((("origin", b"o"),)) is None and header_value(None) is None


def test_log_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("LOG_RECORDS", raising=False)
    assert (LogSettings().log_format, LogSettings().log_records) == ("json", False)
    monkeypatch.setenv("LOG_FORMAT", "console")
    monkeypatch.setenv("LOG_RECORDS", "true")
    assert (LogSettings().log_format, LogSettings().log_records) == ("console", True)
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        LogSettings()
