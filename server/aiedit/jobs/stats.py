"""Counts of finished jobs, kept in the database as jobs finish (in the same transaction as the
state change) and never lowered when jobs expire: the source of /metrics' counters and run-time
histograms, shared by every process of a deployment."""

from __future__ import annotations

import functools
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select

from aiedit.store.db import Database, as_utc
from aiedit.store.models import JobStat

# Seconds; from a tiny classic job to a long video.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
NEVER_STARTED = -1


def record_finished(session, job: tuple, state: str, finished_at: datetime,
                    error: dict | None) -> None:
    """Count a job that has just reached `state` (call inside the transaction that set it);
    `job` is its (operation, model, started_at), as the finishing update returned them."""
    operation, model, started = job
    if started is None:
        bucket, seconds = NEVER_STARTED, 0.0
    else:
        seconds = max(0.0, (as_utc(finished_at) - as_utc(started)).total_seconds())
        bucket = bisect_left(DURATION_BUCKETS, seconds)
    key = {"operation": operation, "model": model, "state": state,
           "code": str((error or {}).get("code") or "")[:64], "bucket": bucket}
    connection = session.connection()  # Core, the statement built once: every job ends here
    connection.execute(_upsert_statement(connection.dialect.name), {**key, "seconds": seconds})


@functools.cache
def _upsert_statement(dialect: str):
    """Add one job to its (operation, model, state, code, bucket) row, made on first use:
    parameters operation, model, state, code, bucket and seconds."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    keys = ("operation", "model", "state", "code", "bucket")
    statement = insert(JobStat).values(
        {name: bindparam(name, type_=JobStat.__table__.c[name].type)
         for name in (*keys, "seconds")} | {"count": 1})
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={"count": JobStat.count + 1,
              "seconds": JobStat.seconds + statement.excluded.seconds},
    )


@dataclass
class Histogram:
    operation: str
    model: str
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total_s: float = 0.0

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (le, jobs at or under it), the last one "+Inf"."""
        out, running = [], 0
        for bound, n in zip((*map(repr, DURATION_BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


def finished(db: Database) -> list[tuple[str, str, str, int]]:
    """(operation, model, state, jobs) ever finished."""
    with db.session() as s:
        rows = s.execute(
            select(JobStat.operation, JobStat.model, JobStat.state, func.sum(JobStat.count))
            .group_by(JobStat.operation, JobStat.model, JobStat.state)
        )
        return [(op, model, state, int(n)) for op, model, state, n in rows]


def failures(db: Database) -> list[tuple[str, str, int]]:
    """(operation, error code, jobs) ever failed."""
    with db.session() as s:
        rows = s.execute(
            select(JobStat.operation, JobStat.code, func.sum(JobStat.count))
            .where(JobStat.state == "failed")
            .group_by(JobStat.operation, JobStat.code)
        )
        return [(op, code or "unknown", int(n)) for op, code, n in rows]


def durations(db: Database) -> list[Histogram]:
    """Run time of succeeded jobs, one histogram per operation and model."""
    with db.session() as s:
        rows = s.execute(
            select(JobStat.operation, JobStat.model, JobStat.bucket, JobStat.count,
                   JobStat.seconds)
            .where(JobStat.state == "succeeded", JobStat.bucket != NEVER_STARTED)
        ).all()
    histograms: dict[tuple[str, str], Histogram] = {}
    for op, model, bucket, count, seconds in rows:
        h = histograms.setdefault((op, model), Histogram(op, model))
        h.counts[min(bucket, len(DURATION_BUCKETS))] += count
        h.total_s += seconds
    return [histograms[k] for k in sorted(histograms)]
