"""Usage analytics (hosted mode): how often each feature (operation) is used per day, counted as
jobs are accepted, for accounts that did not opt out. Only the aggregate count is kept: no
account, no parameters, no prompts, no images, and no cookie."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from aiedit.store.db import Database, utcnow
from aiedit.store.models import FeatureCount, User

log = logging.getLogger(__name__)


def count(db: Database, user: str | None, feature: str) -> bool:
    """Count one use of `feature` unless the account opted out; returns whether it counted.
    Called after the job is stored: a failure here is logged and never fails the request."""
    try:
        return _count(db, user, feature)
    except SQLAlchemyError:
        log.exception("usage analytics: could not count a use of %s", feature)
        return False


def _count(db: Database, user: str | None, feature: str) -> bool:
    with db.session() as s:
        if user is not None:
            row = s.get(User, user)
            if row is not None and row.analytics_opt_out:
                return False
        day = utcnow().strftime("%Y-%m-%d")
        # imported here, not with the module: a personal server's start need not load the
        # PostgreSQL dialect
        if db.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        s.execute(
            insert(FeatureCount).values(day=day, feature=feature, count=1).on_conflict_do_update(
                index_elements=["day", "feature"], set_={"count": FeatureCount.count + 1}
            )
        )
    return True


def totals(db: Database, days: int = 30) -> list[tuple[str, int]]:
    """(feature, uses) over the last `days` days, most used first."""
    since = (utcnow() - timedelta(days=days - 1)).strftime("%Y-%m-%d")
    with db.session() as s:
        rows = s.execute(
            select(FeatureCount.feature, func.sum(FeatureCount.count))
            .where(FeatureCount.day >= since)
            .group_by(FeatureCount.feature)
        ).all()
    return sorted(((f, int(n)) for f, n in rows), key=lambda r: (-r[1], r[0]))
