"""Run every benchmark (or those named on the command line) and print one table of ratios.

Exits non-zero when a benchmark fails or a row misses its target, so a regression cannot pass
quietly."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

from bench.common import Row, print_table


def discover(names: list[str]) -> list[str]:
    import bench

    found = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    if names:
        found = [m for m in found if any(n in m for n in names)]
    return found


def main(argv: list[str]) -> int:
    rows: list[Row] = []
    failed = []
    for name in discover(argv):
        print(f"-- {name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            rows.extend(importlib.import_module(f"bench.{name}").main())
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"   {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    print_table(rows)
    missed = [r.name for r in rows if r.verdict == "MISSED"]
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    if missed:
        print(f"targets missed: {'; '.join(missed)}", file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
