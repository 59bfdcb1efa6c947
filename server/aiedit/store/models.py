"""Database tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_idempotency"),
        Index("ix_jobs_owner_state", "owner", "state"),
        Index("ix_jobs_owner_started", "owner", "started_at"),  # the fair order (fair.py)
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    operation: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    device: Mapped[str] = mapped_column(String(32), default="cpu")
    params: Mapped[dict] = mapped_column(JSON)
    region: Mapped[dict] = mapped_column(JSON)
    inputs: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    results: Mapped[list] = mapped_column(JSON, default=list)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)  # studio: who runs it
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # sha256 hex
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("users.name", ondelete="CASCADE"), nullable=True, index=True
    )


class User(Base):
    """A person (studio mode): owns the jobs of all of their keys; limits are optional."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("email", name="uq_users_email"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    max_queued: Mapped[int | None] = mapped_column(Integer, nullable=True)
    daily_units: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Hosted mode: a person who signed up (name is then a generated id, never shown as theirs).
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    age_confirmed_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    analytics_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Worker(Base):
    """A studio worker process: its device, the models it holds, its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    device: Mapped[str] = mapped_column(String(32))
    models: Mapped[list] = mapped_column(JSON, default=list)
    job: Mapped[str | None] = mapped_column(String(32), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AdminSession(Base):
    """A signed-in admin page: the cookie holds a random token, this row its hash."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    key_id: Mapped[str] = mapped_column(String(16), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class JobStat(Base):
    """Finished jobs counted as they finish, kept when the jobs themselves expire (so /metrics
    counters only grow): one row per operation, model, final state, error code and duration
    bucket (index into jobs/stats.py's DURATION_BUCKETS; len() for longer, -1 never started)."""

    __tablename__ = "job_stats"

    operation: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" unless failed
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Account(Base):
    """Hosted mode: who holds credits. One per user, with an opaque id (the one Stripe sessions
    carry); erasing the user leaves the account row without a user, and `ledger.forget_account`
    detaches its ledger rows, which stay only as anonymous amounts."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("user", name="uq_accounts_user"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("users.name", ondelete="SET NULL"), nullable=True
    )
    plan: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stripe_customer: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    stripe_subscription: Mapped[str | None] = mapped_column(String(255), nullable=True)
    daily_credit_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    suspended_reason: Mapped[str] = mapped_column(Text, default="")
    flagged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    flag_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LedgerEntry(Base):
    """One change of an account's credits; rows are only ever added. The balance is the sum of
    `amount`. A job has at most one row of each kind (hold at submission, then charge or
    release), so settling it twice changes nothing."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("job_id", "kind", name="uq_ledger_job_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    amount: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ref: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class StripeEvent(Base):
    """A Stripe webhook event already handled: its id is inserted in the transaction that
    applies it, so a replayed event changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccountSession(Base):
    """A signed-in person on the account pages (hosted mode): the cookie holds a random token,
    this row its hash and the session's CSRF token."""

    __tablename__ = "account_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    user: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SupportMessage(Base):
    """A message sent from the support form (hosted mode), listed on the admin page."""

    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class FeatureCount(Base):
    """Usage analytics (hosted mode): jobs submitted per day and operation by accounts that did
    not opt out. Aggregate counts only: no account, no parameters, no images."""

    __tablename__ = "feature_counts"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    feature: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class BlockedTerm(Base):
    """A word or phrase refused in prompts. `key` is its folded form (see auth/blocklist.py),
    with a trailing `*` when it also refuses longer words that start with it."""

    __tablename__ = "blocked_terms"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    term: Mapped[str] = mapped_column(String(200))  # as the admin wrote it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PromptRefusal(Base):
    """How many submissions of an owner (user or key) the block list refused."""

    __tablename__ = "prompt_refusals"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
