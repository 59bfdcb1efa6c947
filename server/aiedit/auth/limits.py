"""Per-user limits (`aiedit users limit NAME --max-queued N --daily-units U`): checked in the
transaction that stores a job; a job over a limit is refused, saying which limit and when it
resets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, not_, select
from sqlalchemy.orm import Session

from aiedit.store.db import Database, utcnow
from aiedit.store.models import Job, User

UNFINISHED = ("queued", "running")
# Jobs whose cost counts toward daily units: failed jobs and jobs canceled before they started
# cost nothing.
COUNTS_TOWARD_UNITS = and_(
    Job.state != "failed", not_(and_(Job.state == "canceled", Job.started_at.is_(None)))
)


def midnight_utc(now: datetime | None = None) -> datetime:
    return (now or utcnow()).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class LimitExceeded(Exception):
    code: str
    message: str
    retry_after_s: int


def usage_today(db: Database, owner: str, now: datetime | None = None) -> float:
    """Cost units of the owner's jobs created since 00:00 UTC (failed jobs and jobs canceled
    before they started cost nothing)."""
    with db.session() as s:
        return _usage_today(s, owner, now)


def _usage_today(s: Session, owner: str, now: datetime | None) -> float:
    return float(
        s.scalar(
            select(func.coalesce(func.sum(Job.cost), 0.0)).where(
                Job.owner == owner,
                Job.created_at >= midnight_utc(now),
                COUNTS_TOWARD_UNITS,
            )
        )
        or 0.0
    )


def check(db: Database, user_name: str | None, cost: float) -> None:
    """Raise LimitExceeded when a new job of `cost` units would break the user's limits."""
    with db.session() as s:
        check_in(s, user_name, cost)


def check_in(s: Session, user_name: str | None, cost: float,
             known: tuple[int | None, float | None] | None = None) -> None:
    """`check` inside a session: the one that inserts the job, serialized on the user (see
    `JobRunner.submit`), so that concurrent submissions cannot all pass a limit. `known`: the
    user's (max_queued, daily_units) as the request's key lookup read them (no read here)."""
    if not user_name:
        return
    if known is None:
        user = s.get(User, user_name)
        if user is None:
            return
        known = (user.max_queued, user.daily_units)
    max_queued, daily_units = known
    if max_queued is None and daily_units is None:
        return
    unfinished = s.scalar(
        select(func.count()).where(Job.owner == user_name, Job.state.in_(UNFINISHED))
    )
    if max_queued is not None and unfinished >= max_queued:
        raise LimitExceeded(
            "limit_max_queued",
            f"user {user_name} has {unfinished} unfinished job(s) and the limit max-queued is "
            f"{max_queued}; it frees up as soon as one of them finishes or is canceled",
            retry_after_s=5,
        )
    if daily_units is not None:
        now = utcnow()
        used = _usage_today(s, user_name, now)
        if used + cost > daily_units:
            reset = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            wait = max(1, math.ceil((reset - now).total_seconds()))
            raise LimitExceeded(
                "limit_daily_units",
                f"user {user_name} has used {used:g} of {daily_units:g} daily units and "
                f"this job costs {cost:g}; the limit daily-units resets at "
                f"{reset:%Y-%m-%d %H:%M} UTC (in {wait // 3600} h {wait % 3600 // 60} min)",
                retry_after_s=wait,
            )
