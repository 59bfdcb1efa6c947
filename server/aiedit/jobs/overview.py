"""What operators see: queue, job counts, usage per owner. Everything is read from the
database at the moment it is asked for, so any API process answers for every worker and process
(nothing is counted in one process's memory)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from aiedit.auth.keys import LOCAL_OWNER
from aiedit.auth.limits import COUNTS_TOWARD_UNITS, midnight_utc
from aiedit.jobs.runner import FAILED, QUEUED, RUNNING
from aiedit.store.db import Database, utcnow
from aiedit.store.models import ApiKey, Job, User

LOCAL_OWNER_NAME = "local (no key)"


@dataclass
class Usage:
    """One user (studio) or key owner: what they ran and may run."""

    owner: str
    name: str
    role: str
    jobs_24h: int = 0
    units_today: float = 0.0  # as the daily-units limit counts them (since 00:00 UTC)
    queued: int = 0
    running: int = 0
    failed_24h: int = 0
    max_queued: int | None = None
    daily_units: float | None = None


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
    """Job owners as people read them: users by name, user-less keys by the key's name."""
    with db.session() as s:
        names = dict(s.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.user.is_(None))).all())
    return {LOCAL_OWNER: LOCAL_OWNER_NAME, **names}


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
    """Every user (even one with no jobs) and every other job owner: jobs and failures in the
    window, units today as the daily-units limit counts them, jobs waiting and running now, and
    the user's limits."""
    now = utcnow()
    recent = Job.created_at >= now - window
    today = (Job.created_at >= midnight_utc(now)) & COUNTS_TOWARD_UNITS
    query = (
        select(
            Job.owner,
            func.sum(case((recent, 1), else_=0)),
            func.sum(case((today, Job.cost), else_=0.0)),
            func.sum(case((Job.state == QUEUED, 1), else_=0)),
            func.sum(case((Job.state == RUNNING, 1), else_=0)),
            func.sum(case((recent & (Job.state == FAILED), 1), else_=0)),
        )
        .group_by(Job.owner)
    )
    with db.session() as s:
        rows = s.execute(query).all()
        users = list(s.scalars(select(User)))
        key_roles = dict(s.execute(select(ApiKey.id, ApiKey.role)).all())
    names = owner_names(db)
    table = {
        u.name: Usage(u.name, u.name, u.role, max_queued=u.max_queued, daily_units=u.daily_units)
        for u in users
    }
    for owner, jobs, units, queued, running, failed in rows:
        role = "admin" if owner == LOCAL_OWNER else key_roles.get(owner, "")
        usage = table.setdefault(owner, Usage(owner, names.get(owner, owner), role))
        usage.jobs_24h, usage.units_today = int(jobs or 0), float(units or 0.0)
        usage.queued, usage.running, usage.failed_24h = (
            int(queued or 0), int(running or 0), int(failed or 0))
    return sorted(table.values(), key=lambda u: u.name.lower())
