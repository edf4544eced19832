"""taskgate/logs.py: one line per distinct event, with a count, on a fake clock."""

from __future__ import annotations

import logging

import pytest

from taskgate.logs import Admission, RateLimitedLog, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# (seconds since the start, key) -> the Admission expected (None: held back and counted)
CASES: list[tuple[str, list[tuple[float, str, Admission | None]]]] = [
    ("first event is logged", [(0, "a", Admission(1, 0.0))]),
    (
        "repeats within the interval are counted, not logged",
        [(0, "a", Admission(1, 0.0)), (1, "a", None), (9.9, "a", None)],
    ),
    (
        "the first one after the interval carries the count",
        [
            (0, "a", Admission(1, 0.0)),
            (1, "a", None),
            (2, "a", None),
            (10, "a", Admission(3, 10.0)),
            (11, "a", None),
            (25, "a", Admission(2, 15.0)),
        ],
    ),
    (
        "keys are independent",
        [(0, "a", Admission(1, 0.0)), (1, "b", Admission(1, 0.0)), (2, "a", None)],
    ),
    (
        "a quiet key is logged again with no count",
        [(0, "a", Admission(1, 0.0)), (60, "a", Admission(1, 60.0))],
    ),
]


@pytest.mark.parametrize(("events"), [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_rate_limiter(events: list[tuple[float, str, Admission | None]]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock)
    start = clock.now
    for offset, key, expected in events:
        clock.now = start + offset
        assert limiter.admit(key) == expected, (offset, key)


@pytest.mark.parametrize(
    ("admission", "suffix"),
    [
        (Admission(1, 0.0), ""),
        (Admission(1, 30.0), ""),
        (Admission(2, 10.0), " (x2 in the last 10s)"),
        (Admission(1234, 10.4), " (x1234 in the last 10s)"),
    ],
)
def test_suffix(admission: Admission, suffix: str) -> None:
    assert admission.suffix() == suffix


def test_keys_are_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, max_keys=3)
    for key in "abcd":  # "a" is forgotten to make room for "d"
        assert limiter.admit(key) == Admission(1, 0.0)
    assert limiter.admit("a") == Admission(1, 0.0)
    assert limiter.admit("d") is None


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    logger = logging.getLogger("test.logs")
    limited = RateLimitedLog(logger, 10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.logs"):
        for _ in range(5000):
            limited.warning("down", "database down: %s", "refused")
        clock.now += 10
        assert limited.warning("down", "database down: %s", "refused")
        assert not limited.info("quiet", "not enabled at WARNING")
    assert [r.getMessage() for r in caplog.records] == [
        "database down: refused",
        "database down: refused (x5000 in the last 10s)",
    ]
    assert all(r.exc_info is None for r in caplog.records)
