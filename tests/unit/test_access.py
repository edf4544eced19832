"""Request ids, the access line and the JSON log format (docs/decisions.md P5, P11)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from taskgate.access import log_call, request_id, request_id_from_metadata
from taskgate.command import JsonFormatter, TextFormatter


@pytest.mark.parametrize("given", ["abc-123", "a.b_c:d/e+f=g@h", "x" * 128])
def test_a_sane_request_id_is_kept(given: str) -> None:
    assert request_id(given) == given


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "new\nline", "é", b"abc"])
def test_anything_else_gets_a_new_one(given: str | bytes | None) -> None:
    made = request_id(given)
    assert re.fullmatch("[0-9a-f]{32}", made)
    assert made != request_id(given)


def test_the_metadata_key_is_read() -> None:
    assert request_id_from_metadata([("a", "1"), ("x-request-id", "r1")]) == "r1"
    assert len(request_id_from_metadata([("x-request-id", "bad id")])) == 32


def test_the_access_line_as_text_and_as_json(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="taskgate.access"):
        log_call("rest", "/api.TaskService/ListTasks", "OK", 0.01234, "10.0.0.1", "r1", 200)
        log_call("grpc", "", "CANCELLED", 0.5, "", "r2")
    first, second = caplog.records
    assert first.getMessage() == (
        "door=rest method=/api.TaskService/ListTasks code=OK status=200 ms=12.3 "
        "peer=10.0.0.1 request_id=r1"
    )
    assert second.getMessage() == "door=grpc method=- code=CANCELLED ms=500.0 peer=- request_id=r2"
    entry = json.loads(JsonFormatter("worker-1").format(first))
    assert entry.keys() == {
        "ts", "level", "logger", "msg", "worker", "request_id",
        "door", "method", "code", "status", "ms", "peer",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    assert (entry["level"], entry["logger"], entry["worker"]) == (
        "INFO",
        "taskgate.access",
        "worker-1",
    )
    assert (entry["request_id"], entry["status"], entry["ms"]) == ("r1", 200, 12.3)


def test_the_access_line_does_not_walk_the_stack(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # P31: findCaller is a sixth of an access line's cost, for a file and line never printed.
    def no_walk(*args: object, **kwargs: object) -> None:
        raise AssertionError("findCaller called")

    monkeypatch.setattr(logging.getLogger("taskgate.access"), "findCaller", no_walk)
    with caplog.at_level(logging.INFO, logger="taskgate.access"):
        log_call("rest", "/api.TaskService/ListTasks", "OK", 0.001, "10.0.0.1", "r1", 200)
    (record,) = caplog.records
    assert (record.name, record.levelno, record.funcName) == ("taskgate.access", 20, "log_call")
    assert record.getMessage().endswith("peer=10.0.0.1 request_id=r1")


def test_an_access_line_is_dropped_by_a_disabled_logger(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("taskgate.access"), "disabled", True)
    with caplog.at_level(logging.INFO, logger="taskgate.access"):
        log_call("rest", "/api.TaskService/ListTasks", "OK", 0.001, "10.0.0.1", "r1", 200)
    assert not caplog.records


def test_json_lines_carry_tracebacks_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("now",), None)
        import sys

        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    entry = json.loads(text)
    assert entry["msg"] == "failed now"
    assert "ValueError: boom" in entry["exc"]


@pytest.mark.parametrize("created", [1_764_504_000.0, 1_764_504_000.999, 1_764_504_059.5, 0.25])
def test_the_text_format_is_loggings_own(created: float) -> None:
    # P40: the date and time of a second are made once; the text is what logging makes.
    fmt = "%(asctime)s worker-0 %(levelname)s %(name)s: %(message)s"
    ours, logging_own = TextFormatter(fmt), logging.Formatter(fmt)
    for moment in (created, created + 0.0004, created + 1.0, created):  # back to a second
        record = logging.LogRecord("taskgate.x", logging.INFO, __file__, 1, "m %s", ("a",), None)
        record.created, record.msecs = moment, (moment - int(moment)) * 1000
        assert ours.format(record) == logging_own.format(record)
        assert ours.formatTime(record, "%H") == logging_own.formatTime(record, "%H")


def test_the_json_timestamp_follows_each_second() -> None:
    formatter = JsonFormatter()
    for moment, stamp in [
        (1_764_504_000.5, "2025-11-30T12:00:00.500Z"),
        (1_764_504_001.25, "2025-11-30T12:00:01.250Z"),
        (1_764_504_000.0, "2025-11-30T12:00:00.000Z"),
    ]:
        record = logging.LogRecord("taskgate.x", logging.INFO, __file__, 1, "m", (), None)
        record.created, record.msecs = moment, (moment - int(moment)) * 1000
        assert json.loads(formatter.format(record))["ts"] == stamp
