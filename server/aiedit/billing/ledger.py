"""The credit ledger (hosted mode): accounts and the append-only rows that change their credits.

An account's balance is the sum of its rows' `amount`. Rows are only added, never changed,
except by `forget_account` (an erased account's rows keep only their amounts). A job's price is
held at submission (a `hold` row, negative), and when the job finishes either kept (a `charge`
row of 0 marks it spent) or given back (a `release` row, positive); a job has at most one row of
each kind (a unique index), and `settle` runs inside the state change that finishes the job.

Anything that takes credits away (`hold`, `debit`) runs in a transaction serialized on the
account (`Database.serialize(session, lock_name(account_id))`), so the balance it reads cannot
change before it commits: the balance never goes below zero, also with several API processes.
Adding credits needs no lock.

Functions take a SQLAlchemy session when they are meant to be part of a caller's transaction,
and a `Database` when they are a transaction of their own."""

from __future__ import annotations

import functools
import math
import uuid
from datetime import datetime, timedelta

from sqlalchemy import String, and_, bindparam, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from aiedit.store.db import Database, as_utc, utcnow
from aiedit.store.models import Account, LedgerEntry, User

# Credits in: an admin's grant (or correction), a bought pack, a subscription period.
GRANT, PURCHASE, SUBSCRIPTION = "grant", "purchase", "subscription"
# Credits out: a refunded payment taken back; a job's price held, then charged or released.
REFUND, HOLD, CHARGE, RELEASE = "refund", "hold", "charge", "release"
KINDS = (GRANT, PURCHASE, SUBSCRIPTION, REFUND, HOLD, CHARGE, RELEASE)
SUCCEEDED = "succeeded"


class CreditError(Exception):
    """A change refused; `code` and `message` are what the API answers."""

    status = 422
    code = "credit_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InsufficientCredits(CreditError):
    status = 402
    code = "insufficient_credits"

    def __init__(self, balance: int, price: int, held: int = 0):
        self.balance, self.price = balance, price
        pending = f" ({held} more are held for your unfinished jobs)" if held else ""
        super().__init__(
            f"this job costs {price} credits and your balance is {balance}{pending}; "
            "buy credits (POST /v1/billing/checkout) or make the job smaller"
        )


class DailyLimitReached(CreditError):
    status = 429
    code = "daily_credit_limit"

    def __init__(self, spent: int, limit: int, price: int, now: datetime):
        reset = midnight_utc(now) + timedelta(days=1)
        self.retry_after_s = max(1, math.ceil((reset - now).total_seconds()))
        wait = self.retry_after_s
        super().__init__(
            f"this account may spend {limit} credits a day and has spent {spent} today; this "
            f"job costs {price}. The ceiling resets at {reset:%Y-%m-%d %H:%M} UTC (in "
            f"{wait // 3600} h {wait % 3600 // 60} min)"
        )


class AccountSuspended(CreditError):
    status = 403
    code = "account_suspended"

    def __init__(self, reason: str = ""):
        super().__init__(
            "this account is suspended" + (f" ({reason})" if reason else "")
            + "; contact the server's operator"
        )


def midnight_utc(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def lock_name(account_id: str) -> str:
    """The name to `Database.serialize` on before taking credits from `account_id`."""
    return f"account:{account_id}"


# --- accounts ---------------------------------------------------------------------------------


def account_of(session: Session, user: str) -> Account | None:
    """The user's account, or None if it has none yet."""
    return session.scalar(select(Account).where(Account.user == user))


def get_account(session: Session, account_id: str) -> Account | None:
    return session.get(Account, account_id)


def ensure_account(db: Database, user: str) -> Account:
    """The user's account, made on first use (an opaque random id). Safe when two requests
    make it at once: one insert wins, the other reads it."""
    with db.session() as s:
        account = account_of(s, user)
        if account is not None:
            return account
    try:
        with db.session() as s:
            if s.get(User, user) is None:
                raise LookupError(f"no user {user!r}")
            account = Account(id=uuid.uuid4().hex, user=user, created_at=utcnow())
            s.add(account)
        return account
    except IntegrityError:
        with db.session() as s:
            return account_of(s, user)


def suspension(session: Session, user: str) -> Account | None:
    """The user's account if it is suspended, else None."""
    return session.scalar(
        select(Account).where(Account.user == user, Account.suspended_at.is_not(None))
    )


# --- reading ----------------------------------------------------------------------------------


def balance(session: Session, account_id: str) -> int:
    """Credits the account can spend now (held credits are already taken off)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account_id
            )
        )
    )


def _unreleased_holds(account_id: str, since: datetime | None = None):
    """Hold rows of the account whose job has not been released (charged ones count)."""
    settled = aliased(LedgerEntry)
    query = select(LedgerEntry).where(
        LedgerEntry.account_id == account_id,
        LedgerEntry.kind == HOLD,
        ~exists().where(and_(settled.job_id == LedgerEntry.job_id, settled.kind == RELEASE)),
    )
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    return query


def held(session: Session, account_id: str) -> int:
    """Credits held for the account's unfinished jobs (neither charged nor released yet)."""
    settled = aliased(LedgerEntry)
    return -int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account_id,
                LedgerEntry.kind == HOLD,
                ~exists().where(
                    and_(settled.job_id == LedgerEntry.job_id, settled.kind.in_((CHARGE, RELEASE)))
                ),
            )
        )
    )


def spent_today(session: Session, account_id: str, now: datetime | None = None) -> int:
    """Credits of jobs submitted since 00:00 UTC, held or charged (released ones not)."""
    start = midnight_utc(now or utcnow())
    rows = _unreleased_holds(account_id, since=start).subquery()
    return -int(session.scalar(select(func.coalesce(func.sum(rows.c.amount), 0))))


def entries(
    session: Session, account_id: str, limit: int | None = None, offset: int = 0
) -> list[LedgerEntry]:
    """The account's rows, newest first."""
    query = (
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def entry_json(entry: LedgerEntry) -> dict:
    """A row as the API, the account pages and the data export show it."""
    return {
        "id": entry.id,
        "amount": entry.amount,
        "kind": entry.kind,
        "job_id": entry.job_id,
        "reason": entry.reason,
        "created_at": as_utc(entry.created_at).isoformat(),
    }


def spent_total(session: Session, account_id: str) -> int:
    """Credits ever spent on jobs (charged holds)."""
    charged = aliased(LedgerEntry)
    return -int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account_id,
                LedgerEntry.kind == HOLD,
                exists().where(and_(charged.job_id == LedgerEntry.job_id, charged.kind == CHARGE)),
            )
        )
    )


# --- writing ----------------------------------------------------------------------------------


def credit(
    session: Session, account_id: str, amount: int, kind: str, reason: str = "",
    ref: str | None = None, meta: dict | None = None,
) -> LedgerEntry:
    """Add `amount` (> 0) credits: a grant, a bought pack, a subscription period."""
    if not isinstance(amount, int) or amount <= 0:
        raise CreditError(f"credits to add must be a positive whole number (got {amount!r})")
    return _append(session, account_id, amount, kind, reason=reason, ref=ref, meta=meta)


def debit(
    session: Session, account_id: str, amount: int, kind: str, reason: str = "",
    ref: str | None = None, meta: dict | None = None, floor: bool = False,
) -> tuple[LedgerEntry | None, int]:
    """Take `amount` (> 0) credits away; the session must be serialized on `lock_name`. More
    than the balance is refused, or with `floor` only the balance is taken. Returns the row
    (None when nothing was taken) and the part of `amount` not taken."""
    if not isinstance(amount, int) or amount <= 0:
        raise CreditError(f"credits to take must be a positive whole number (got {amount!r})")
    available = balance(session, account_id)
    if amount > available and not floor:
        raise CreditError(
            f"cannot take {amount} credits: the balance is {available} and never goes below 0"
        )
    taken = min(amount, max(0, available))
    row = (
        _append(session, account_id, -taken, kind, reason=reason, ref=ref, meta=meta)
        if taken else None
    )
    return row, amount - taken


def hold(
    session: Session, account_id: str, job_id: str, price: int,
    daily_limit: int | None = None, now: datetime | None = None,
) -> LedgerEntry | None:
    """Hold a new job's price, in the transaction that stores the job; the session must be
    serialized on `lock_name(account_id)`. Raises InsufficientCredits, DailyLimitReached or
    AccountSuspended. A price of 0 holds nothing."""
    now = now or utcnow()
    account = session.get(Account, account_id)
    if account is None:
        raise CreditError(f"no account {account_id!r}")
    if account.suspended_at is not None:
        raise AccountSuspended(account.suspended_reason)
    if price <= 0:
        return None
    limit = account.daily_credit_limit if account.daily_credit_limit is not None else daily_limit
    if limit:
        spent = spent_today(session, account_id, now)
        if spent + price > limit:
            raise DailyLimitReached(spent, limit, price, now)
    available = balance(session, account_id)
    if price > available:
        raise InsufficientCredits(available, price, held(session, account_id))
    return _append(session, account_id, -price, HOLD, job_id=job_id, now=now)


@functools.cache
def _hold_statement():
    """A job's hold (parameter job_id), built once: every job that ends asks."""
    return select(LedgerEntry.account_id, LedgerEntry.amount).where(
        LedgerEntry.job_id == bindparam("job_id", type_=String), LedgerEntry.kind == HOLD)


def settle(session: Session, job_id: str, state: str) -> LedgerEntry | None:
    """A job finished as `state`: charge its hold if it succeeded, release it otherwise. Called
    in the transaction whose conditional update finished the job (JobRunner's `_transition`),
    so it runs once per job; a second call finds the job settled and changes nothing."""
    hold_row = session.connection().execute(_hold_statement(), {"job_id": job_id}).first()
    if hold_row is None:  # every job outside hosted mode: one cheap read on its way out
        return None
    done = session.scalar(
        select(func.count()).where(
            LedgerEntry.job_id == job_id, LedgerEntry.kind.in_((CHARGE, RELEASE))
        )
    )
    if done:
        return None
    if state == SUCCEEDED:
        return _append(session, hold_row.account_id, 0, CHARGE, job_id=job_id,
                       meta={"price": -hold_row.amount})
    return _append(session, hold_row.account_id, -hold_row.amount, RELEASE, job_id=job_id,
                   reason=f"job {state}")


def grant(db: Database, account_id: str, amount: int, reason: str) -> LedgerEntry:
    """An admin's change (`aiedit credits grant`): positive adds, negative takes away (never
    below zero). The reason is required: every change is explained in the ledger."""
    if not reason.strip():
        raise CreditError("a grant needs a reason (--reason TEXT): it is kept in the ledger")
    if not isinstance(amount, int) or amount == 0:
        raise CreditError(f"the amount must be a whole number other than 0 (got {amount!r})")
    with db.session() as s:
        db.serialize(s, lock_name(account_id))
        if s.get(Account, account_id) is None:
            raise CreditError(f"no account {account_id!r}")
        if amount > 0:
            return credit(s, account_id, amount, GRANT, reason=reason)
        row, _ = debit(s, account_id, -amount, GRANT, reason=reason)
        return row


def set_suspended(session: Session, account_id: str, suspended: bool, reason: str = "") -> bool:
    """Suspend or lift a suspension; True if that changed anything."""
    values = (
        {"suspended_at": utcnow(), "suspended_reason": reason}
        if suspended else {"suspended_at": None, "suspended_reason": ""}
    )
    condition = Account.suspended_at.is_(None) if suspended else Account.suspended_at.is_not(None)
    result = session.execute(
        update(Account).where(Account.id == account_id, condition).values(**values)
    )
    return result.rowcount == 1


def flag(session: Session, account_id: str, reason: str) -> None:
    """Mark the account for an admin's attention (a refund took back credits already spent)."""
    session.execute(
        update(Account).where(Account.id == account_id)
        .values(flagged_at=utcnow(), flag_reason=reason)
    )


def forget_account(session: Session, account_id: str) -> int:
    """Erasure: detach the account's ledger rows and delete the account row (with its Stripe
    customer id). The rows stay for the tax records as anonymous amounts: kind, credits, time,
    and for payments the sum paid and its currency; no account, job, reason or payment
    reference is left. Cancel the user's jobs first. Returns how many rows were detached."""
    rows = list(session.scalars(select(LedgerEntry).where(LedgerEntry.account_id == account_id)))
    for row in rows:
        money = {k: v for k, v in (row.meta or {}).items() if k in ("amount", "currency")}
        row.account_id, row.job_id, row.reason, row.ref = None, None, "", None
        row.meta = money or None
    session.flush()
    session.execute(Account.__table__.delete().where(Account.id == account_id))
    return len(rows)


def _append(
    session: Session, account_id: str, amount: int, kind: str, *, reason: str = "",
    ref: str | None = None, meta: dict | None = None, job_id: str | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    row = LedgerEntry(
        account_id=account_id, amount=amount, kind=kind, job_id=job_id, ref=ref,
        reason=reason, meta=meta, created_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row
