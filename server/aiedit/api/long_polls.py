"""Open long-polls and event streams, counted in total and per caller: each holds a server
thread, so `max_long_polls` stays below half of them and health checks, submissions and
downloads always find one. Over either limit a request gets 429 `too_many_long_polls`."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from flask import current_app

from aiedit.api.errors import ApiError

RETRY_S = 1


class LongPolls:
    def __init__(self, total: int, per_caller: int):
        self.total, self.per_caller = total, per_caller
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def open_count(self, caller: str | None = None) -> int:
        with self._lock:
            return sum(self._open.values()) if caller is None else self._open.get(caller, 0)

    @contextmanager
    def slot(self, caller: str):
        with self._lock:
            mine, everyone = self._open.get(caller, 0), sum(self._open.values())
            if mine >= self.per_caller or everyone >= self.total:
                raise ApiError(
                    429,
                    "too_many_long_polls",
                    f"{mine} long-polls or event streams are open for you and {everyone} in all; "
                    f"this server allows {self.per_caller} per caller and {self.total} in all "
                    "(max_long_polls_per_key, max_long_polls). Follow fewer jobs at once, or "
                    "poll without `wait` after Retry-After",
                    headers={"Retry-After": str(RETRY_S)},
                )
            self._open[caller] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._open[caller] - 1
                if left:
                    self._open[caller] = left
                else:
                    del self._open[caller]


_lock = threading.Lock()


def long_polls() -> LongPolls:
    app = current_app._get_current_object()
    with _lock:
        polls = app.extensions.get("aiedit-long-polls")
        if polls is None:
            polls = LongPolls(*app.extensions["aiedit"].config.long_poll_limits)
            app.extensions["aiedit-long-polls"] = polls
        return polls


def long_poll_slot(caller: str):
    """A context manager holding one slot for `caller` (raises the 429 when none is free)."""
    return long_polls().slot(caller)
