"""What operators see: queue, job counts, usage per owner. Everything is read from the
database at the moment it is asked for, so any API process answers for every worker and process
(nothing is counted in one process's memory)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from aiedit.jobs.runner import FAILED, QUEUED, RUNNING
from aiedit.store.db import Database, utcnow
from aiedit.store.models import ApiKey, Job

LOCAL_OWNER_NAME = "local (no key)"


@dataclass
class Usage:
    owner: str
    name: str
    jobs_24h: int
    units_24h: float
    queued: int
    running: int
    failed_24h: int


def state_counts(db: Database) -> list[tuple[str, str, int]]:
    """(operation, state, jobs) for every job the server holds."""
    with db.session() as s:
        rows = s.execute(
            select(Job.operation, Job.state, func.count()).group_by(Job.operation, Job.state)
        )
        return [tuple(r) for r in rows]


def queue_depth(db: Database) -> dict[str, int]:
    """Queued jobs per device queue."""
    with db.session() as s:
        rows = s.execute(
            select(Job.device, func.count()).where(Job.state == QUEUED).group_by(Job.device)
        )
        return {device: n for device, n in rows}


def oldest_queued(db: Database) -> datetime | None:
    with db.session() as s:
        return s.scalar(select(func.min(Job.created_at)).where(Job.state == QUEUED))


def owner_names(db: Database) -> dict[str, str]:
    with db.session() as s:
        names = dict(s.execute(select(ApiKey.id, ApiKey.name)).all())
    return {"local": LOCAL_OWNER_NAME, **names}


def active_jobs(db: Database, limit: int = 500) -> list[Job]:
    """Running jobs first, then queued ones, oldest first."""
    with db.session() as s:
        return list(
            s.scalars(
                select(Job)
                .where(Job.state.in_((QUEUED, RUNNING)))
                .order_by(case((Job.state == RUNNING, 0), else_=1), Job.created_at)
                .limit(limit)
            )
        )


def recent_jobs(db: Database, limit: int = 20) -> list[Job]:
    with db.session() as s:
        return list(
            s.scalars(
                select(Job)
                .where(Job.state.not_in((QUEUED, RUNNING)))
                .order_by(Job.finished_at.desc())
                .limit(limit)
            )
        )


def usage(db: Database, window: timedelta = timedelta(hours=24)) -> list[Usage]:
    """Per owner: jobs and units submitted in the window, jobs waiting and running now."""
    since = utcnow() - window
    recent = Job.created_at >= since
    query = (
        select(
            Job.owner,
            func.sum(case((recent, 1), else_=0)),
            func.sum(case((recent, Job.cost), else_=0.0)),
            func.sum(case((Job.state == QUEUED, 1), else_=0)),
            func.sum(case((Job.state == RUNNING, 1), else_=0)),
            func.sum(case((recent & (Job.state == FAILED), 1), else_=0)),
        )
        .group_by(Job.owner)
        .order_by(Job.owner)
    )
    with db.session() as s:
        rows = s.execute(query).all()
    names = owner_names(db)
    return [
        Usage(owner, names.get(owner, owner), int(jobs or 0), float(units or 0.0),
              int(queued or 0), int(running or 0), int(failed or 0))
        for owner, jobs, units, queued, running, failed in rows
    ]
