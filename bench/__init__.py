"""Benchmarks: each `bench_*.py` module has `main() -> list[Row]`; `python -m bench` runs them all
and prints one table. Every ratio compares two timings taken in the same run."""
