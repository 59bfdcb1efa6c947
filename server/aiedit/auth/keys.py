"""API keys: `aiedit_<id>_<secret>`, stored as a SHA-256 of the secret (keys are long random
strings, so a fast hash is enough), compared in constant time."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import String, bindparam, func, select

from aiedit.store.db import Database, utcnow
from aiedit.store.models import ApiKey, Job, User

if TYPE_CHECKING:
    from aiedit.config import Config
    from aiedit.jobs.runner import JobRunner

PREFIX = "aiedit"
LOCAL_OWNER = "local"
ROLES = ("user", "admin")
ACTIVE_STATES = ("queued", "running")  # job states a revoke cancels


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    owner: str
    role: str = "user"
    key_name: str = ""
    user: str | None = None  # studio: the user the key belongs to
    # the user's (max_queued, daily_units), read with the key; None: not read
    limits: tuple[int | None, float | None] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    db: Database, name: str, role: str = "user", user: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key (shown once, never stored). A key of a
    user acts as that user (their role, their jobs); a key without one owns its own jobs."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with db.session() as s:
        if user is not None:
            owner = s.get(User, user)
            if owner is None:
                raise ValueError(
                    f"no user {user!r} (create it with `aiedit users create {user}`)"
                )
            role = "admin" if owner.role == "admin" else "user"
        row = ApiKey(
            id=key_id, name=name, secret_hash=_hash(secret), role=role, created_at=utcnow(),
            note="", user=user,
        )
        s.add(row)
    return row, f"{PREFIX}_{key_id}_{secret}"


def list_keys(db: Database) -> list[ApiKey]:
    with db.session() as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(runner: JobRunner, key_id: str) -> bool:
    """Revoke a key and cancel its queued and running jobs (a running job stops at its next
    step, also when the server runs in another process: it polls the job's cancel flag)."""
    with runner.db.session() as s:
        row = s.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
    with runner.db.session() as s:
        active = list(
            s.scalars(select(Job.id).where(Job.owner == key_id, Job.state.in_(ACTIVE_STATES)))
        )
    for job_id in active:
        runner.cancel(job_id)
    return True


def keys_exist(db: Database) -> bool:
    """Whether an active (not revoked) key exists."""
    with db.session() as s:
        return bool(
            s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None)))
        )


def keys_ever_created(db: Database) -> bool:
    """Whether any key, revoked or not, was ever created. A personal server without keys asks
    on every request (one may be created from the CLI meanwhile): a statement built once, on a
    Core connection."""
    with db.connection() as c:
        return c.execute(_any_key_statement()).first() is not None


@functools.cache
def _any_key_statement():
    return select(ApiKey.id).limit(1)


class KeyPolicy:
    """Whether requests need a key: always in studio mode and on a server bound beyond loopback,
    and on any server
    once a key has ever been created. Revoking keys never makes a server open again, so the
    answer, once yes, is kept; until then it is looked up (a key may be created from the CLI
    while the server runs)."""

    def __init__(self, config: Config, db: Database):
        self._db = db
        self._required = not config.is_loopback or config.studio  # studio: keys, always

    def required(self) -> bool:
        if not self._required and keys_ever_created(self._db):
            self._required = True
        return self._required


def authenticate(db: Database, token: str) -> Principal | None:
    """The principal for a presented key, or None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isalnum():
        return None
    row = _key_and_user(db, parts[1])
    if row is None or row.revoked_at is not None:
        hmac.compare_digest(_hash(parts[2]), _hash("x"))  # same work either way
        return None
    if not hmac.compare_digest(_hash(parts[2]), row.secret_hash):
        return None
    return _principal(row)


@functools.cache
def _key_statement():
    """A key's columns and its user's (parameter key_id), built once: every request asks."""
    return (
        select(ApiKey.id, ApiKey.name, ApiKey.secret_hash, ApiKey.role, ApiKey.revoked_at,
               User.name.label("user"), User.role.label("user_role"), User.max_queued,
               User.daily_units)
        .outerjoin(User, User.name == ApiKey.user)
        .where(ApiKey.id == bindparam("key_id", type_=String))
    )


def _key_and_user(db: Database, key_id: str):
    """The key's row joined with its user's (None: no such key), in one statement on a Core
    connection (every request checks a key)."""
    with db.connection() as c:
        return c.execute(_key_statement(), {"key_id": key_id}).first()


def principal_for_key(db: Database, key_id: str) -> Principal | None:
    """Who an active key acts as now (its user's current role), or None if it is revoked."""
    row = _key_and_user(db, key_id)
    if row is None or row.revoked_at is not None:
        return None
    return _principal(row)


def _principal(row) -> Principal:
    if row.user is not None:  # the user's current role counts, not the one at key creation
        return Principal(owner=row.user, role="admin" if row.user_role == "admin" else "user",
                         key_name=row.name, user=row.user,
                         limits=(row.max_queued, row.daily_units))
    return Principal(owner=row.id, role=row.role, key_name=row.name)
