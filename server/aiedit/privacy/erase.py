"""Erasing a user: their jobs (rows, uploads, results, previews), keys and the admin sessions
opened with them, account-page sessions, support messages, refused-prompt counts, live
sessions, and the user row itself. Credit ledger rows needed for the tax records stay, but only
as anonymous amounts (kind, credits, time, and for payments the sum paid and its currency: no
account, job, reason or payment reference).

Unfinished jobs are canceled first (their held credits return through the ledger, as for any
cancel) and given a moment to stop; their rows and files go either way."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from aiedit.privacy import UnknownUser
from aiedit.store.models import (
    AccountSession,
    AdminSession,
    ApiKey,
    Job,
    PromptRefusal,
    SupportMessage,
    User,
)

if TYPE_CHECKING:
    from aiedit.services import Services

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")
STOP_WAIT_S = 10.0  # how long a running job has to stop at its next step


@dataclass
class Erased:
    """What an erasure removed."""

    jobs: int
    keys: int
    ledger_rows_anonymised: int


def erase_user(services: Services, user_id: str, stop_wait_s: float = STOP_WAIT_S) -> Erased:
    """Erase user `user_id` (the user's name, `users.name`) and what belongs to them."""
    db, runner = services.db, services.runner
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise UnknownUser(f"no user {user_id!r}")
        email = user.email
        key_ids = list(s.scalars(select(ApiKey.id).where(ApiKey.user == user_id)))
    owners = [user_id, *key_ids]
    with db.session() as s:  # no new job: the keys stop working now
        s.execute(update(ApiKey).where(ApiKey.id.in_(key_ids))
                  .values(revoked_at=runner.now()).execution_options(synchronize_session=False))
    _stop_jobs(services, owners, stop_wait_s)
    with db.session() as s:
        job_ids = list(s.scalars(select(Job.id).where(Job.owner.in_(owners))))
    for job_id in job_ids:
        runner.delete(job_id)
    if services.live is not None:
        for session_id in services.live.owned_by(owners):
            services.live.close(session_id, "account erased")
    anonymised = 0
    with db.session() as s:
        anonymised = _forget_credits(s, user_id)
        s.execute(delete(SupportMessage).where(SupportMessage.user == user_id))
        s.execute(delete(AccountSession).where(AccountSession.user == user_id))
        s.execute(delete(AdminSession).where(AdminSession.key_id.in_(key_ids)))
        s.execute(delete(PromptRefusal).where(PromptRefusal.owner.in_(owners)))
        s.execute(delete(ApiKey).where(ApiKey.user == user_id))
        s.execute(delete(User).where(User.name == user_id))
    db.scrub()
    _forget_throttles(services, owners, email)
    log.info("user erased", extra={"jobs": len(job_ids), "keys": len(key_ids),
                                   "ledger_rows": anonymised})
    return Erased(jobs=len(job_ids), keys=len(key_ids), ledger_rows_anonymised=anonymised)


def _stop_jobs(services: Services, owners: list[str], wait_s: float) -> None:
    runner = services.runner
    with services.db.session() as s:
        active = list(s.scalars(select(Job.id).where(Job.owner.in_(owners),
                                                     Job.state.in_(ACTIVE))))
    for job_id in active:
        runner.cancel(job_id)
    deadline = time.monotonic() + wait_s
    while active and time.monotonic() < deadline:
        with services.db.session() as s:
            active = list(s.scalars(select(Job.id).where(Job.id.in_(active),
                                                         Job.state.in_(ACTIVE))))
        if active:
            time.sleep(0.1)


def _forget_credits(session, user_id: str) -> int:
    """Detach the user's ledger rows (kept as anonymous amounts, see `ledger.forget_account`)
    and delete the credit account."""
    from aiedit.billing import ledger

    account = ledger.account_of(session, user_id)
    return 0 if account is None else ledger.forget_account(session, account.id)


def _forget_throttles(services: Services, owners: list[str], email: str | None) -> None:
    """Studio and hosted: the request and sign-in limiters' Redis buckets named after the
    user, their keys or their email (they would expire on their own within the hour)."""
    config = services.config
    if not config.studio or not config.broker_url:
        return
    from aiedit.jobs.queue_celery import redis_client

    names = [f"{kind}:{who}" for who in owners for kind in ("owner", "user")]
    if email:
        names.append(f"email:{email.lower()}")
    client = redis_client(config.broker_url)
    try:
        for name in names:
            for key in client.scan_iter(match=f"aiedit:throttle:*:{_glob_escape(name)}"):
                client.delete(key)
    except Exception as exc:  # noqa: BLE001 - Redis down: the buckets expire by themselves
        log.warning("erasure: could not remove rate-limit buckets from Redis (%s); they "
                    "expire on their own", type(exc).__name__)
    finally:
        client.close()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)

