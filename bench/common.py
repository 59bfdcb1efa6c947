"""What a benchmark returns, and how the table is printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """`measured` and `baseline` are taken in the same run; `ratio` = measured / baseline.
    `target` is the ratio the issue asks for (None: a figure to report, not a goal).
    `unit` names what measured and baseline are in (s, MB, ...)."""

    name: str
    measured: float
    baseline: float
    target: float | None = None
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("inf")

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "ok" if self.ratio <= self.target else "MISSED"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of `repeats` timed calls (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def print_table(rows: list[Row]) -> None:
    header = f"{'benchmark':58} {'measured':>12} {'baseline':>12} {'ratio':>8} {'target':>8}  "
    print(header)
    print("-" * len(header))
    for r in rows:
        target = f"<= {r.target:g}" if r.target is not None else ""
        print(
            f"{r.name:58} {r.measured:>10.3f}{r.unit:>2} {r.baseline:>10.3f}{r.unit:>2} "
            f"{r.ratio:>8.3f} {target:>8}  {r.verdict}{('  ' + r.note) if r.note else ''}"
        )
