"""API keys: `aiedit_<id>_<secret>`, stored as a SHA-256 of the secret (keys are long random
strings, so a fast hash is enough), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from aiedit.store.db import Database, utcnow
from aiedit.store.models import ApiKey

PREFIX = "aiedit"
LOCAL_OWNER = "local"
ROLES = ("user", "admin")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    owner: str
    role: str = "user"
    key_name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(db: Database, name: str, role: str = "user") -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        id=key_id, name=name, secret_hash=_hash(secret), role=role, created_at=utcnow(), note=""
    )
    with db.session() as s:
        s.add(row)
    return row, f"{PREFIX}_{key_id}_{secret}"


def list_keys(db: Database) -> list[ApiKey]:
    with db.session() as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(db: Database, key_id: str) -> bool:
    with db.session() as s:
        row = s.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        return True


def keys_exist(db: Database) -> bool:
    with db.session() as s:
        return bool(
            s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None)))
        )


def authenticate(db: Database, token: str) -> Principal | None:
    """The principal for a presented key, or None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isalnum():
        return None
    with db.session() as s:
        row = s.get(ApiKey, parts[1])
    if row is None or row.revoked_at is not None:
        hmac.compare_digest(_hash(parts[2]), _hash("x"))  # same work either way
        return None
    if not hmac.compare_digest(_hash(parts[2]), row.secret_hash):
        return None
    return Principal(owner=row.id, role=row.role, key_name=row.name)
