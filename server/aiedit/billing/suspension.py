"""Suspending an account (hosted mode, admins): its keys answer 403 `account_suspended`, its
queued jobs are canceled and running ones stopped, and their held credits are released (by the
cancel's own state change, see `ledger.settle`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from aiedit.billing import ledger
from aiedit.store.models import Job

if TYPE_CHECKING:
    from aiedit.jobs.runner import JobRunner

ACTIVE = ("queued", "running")


def suspend(runner: JobRunner, user: str, reason: str = "") -> list[str] | None:
    """Suspend `user`'s account and cancel its unfinished jobs. Returns the ids of the jobs
    canceled, or None when it was suspended already. The suspension commits under the
    account's lock, so a submission racing with it is either refused or among the jobs
    found afterwards."""
    db = runner.db
    account = ledger.ensure_account(db, user)
    with db.session() as s:
        db.serialize(s, ledger.lock_name(account.id))
        if not ledger.set_suspended(s, account.id, True, reason):
            return None
    with db.session() as s:
        active = list(s.scalars(select(Job.id).where(Job.owner == user, Job.state.in_(ACTIVE))))
    for job_id in active:
        runner.cancel(job_id)
    return active


def unsuspend(runner: JobRunner, user: str) -> bool:
    """Lift the suspension; False when the account was not suspended."""
    account = ledger.ensure_account(runner.db, user)
    with runner.db.session() as s:
        return ledger.set_suspended(s, account.id, False)
