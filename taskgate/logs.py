"""Rate-limited logging: one line per distinct event, with a count, however often it happens.

A failing path (a database that is down, clients that keep disconnecting) can fail thousands of
times a second. `RateLimitedLog` logs the first event of each key at once, counts the repeats
within `interval` seconds instead of logging them, and logs the next one after that with the
count: "… (x1234 in the last 10s)". `RateLimiter` is the decision alone (no I/O, its clock is a
parameter), so it can be tested without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

#: Seconds between two lines about the same kind of event.
DEFAULT_INTERVAL = 10.0
#: Distinct keys remembered at most; the oldest is forgotten first.
DEFAULT_MAX_KEYS = 1024


@dataclass(frozen=True, slots=True)
class Admission:
    """An event that is to be logged now."""

    #: Events of this key since its last line, this one included (1: nothing was held back).
    count: int
    #: Seconds since this key's last line (0 for its first).
    seconds: float

    def suffix(self) -> str:
        """ " (x1234 in the last 10s)" when events were held back, else ""."""
        if self.count <= 1:
            return ""
        return f" (x{self.count} in the last {self.seconds:.0f}s)"


@dataclass(slots=True)
class _Window:
    logged_at: float
    held_back: int = 0


class RateLimiter:
    """Per key: the first event is admitted, repeats within `interval` seconds of the last
    admitted one are counted and refused, and the first one after it is admitted with the
    count."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[Hashable, _Window] = {}

    def admit(self, key: Hashable) -> Admission | None:
        """An Admission if this event of `key` is to be logged now, else None (counted)."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            self._remember(key, _Window(now))
            return Admission(1, 0.0)
        if now - window.logged_at < self.interval:
            window.held_back += 1
            return None
        admission = Admission(window.held_back + 1, now - window.logged_at)
        window.logged_at = now
        window.held_back = 0
        return admission

    def _remember(self, key: Hashable, window: _Window) -> None:
        if len(self._windows) >= self._max_keys:
            del self._windows[next(iter(self._windows))]  # the oldest key
        self._windows[key] = window


class RateLimitedLog:
    """A logger's `log`, rate-limited per key by a `RateLimiter`."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.limiter = RateLimiter(interval, clock=clock)

    def log(self, level: int, key: Hashable, message: str, *args: object) -> bool:
        """Log `message % args` at `level` unless an event of `key` was logged less than
        `interval` seconds ago; True if a line was written. No traceback: these are expected
        failures, not bugs."""
        if not self.logger.isEnabledFor(level):
            return False
        admission = self.limiter.admit(key)
        if admission is None:
            return False
        text = message % args if args else message
        self.logger.log(level, "%s%s", text, admission.suffix())
        return True

    def info(self, key: Hashable, message: str, *args: object) -> bool:
        return self.log(logging.INFO, key, message, *args)

    def warning(self, key: Hashable, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)
