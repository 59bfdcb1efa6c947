"""Admin page sessions, kept server-side: the browser's cookie holds a random token, the database
a SHA-256 of it with the API key it was opened with and the session's CSRF token. Every request
checks the key again, so revoking it (or taking the admin role from it or its user) ends its
sessions at once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from aiedit.auth.keys import LOCAL_OWNER, Principal, principal_for_key
from aiedit.store.db import Database, as_utc, utcnow
from aiedit.store.models import AdminSession


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())


def open_session(db: Database, key_id: str, principal: Principal,
                 lifetime: timedelta) -> tuple[str, Session]:
    """Start a session for an admin key (`key_id`, or LOCAL_OWNER on a key-less server);
    returns the cookie token and the session."""
    token, csrf = new_token(), new_token()
    now = utcnow()
    with db.session() as s:
        s.execute(delete(AdminSession).where(AdminSession.expires_at < now))
        s.add(AdminSession(id=_hash(token), key_id=key_id, csrf_token=csrf,
                           created_at=now, expires_at=now + lifetime))
    return token, Session(principal, csrf)


def find_session(db: Database, token: str | None, allow_local: bool = False) -> Session | None:
    """The live session for a cookie token whose key is still an active admin key, or None.
    A session of the key-less local owner counts only with `allow_local`."""
    if not token or len(token) > 100:
        return None
    with db.session() as s:
        row = s.get(AdminSession, _hash(token))
        if row is None or as_utc(row.expires_at) <= utcnow():
            return None
        if row.key_id == LOCAL_OWNER:
            if not allow_local:
                return None
            local = Principal(owner=LOCAL_OWNER, role="admin", key_name="local owner")
            return Session(local, row.csrf_token)
        key_id, csrf = row.key_id, row.csrf_token
    principal = principal_for_key(db, key_id)
    if principal is None or not principal.is_admin:  # revoked, or its user is no admin now
        return None
    return Session(principal, csrf)


def close_session(db: Database, token: str | None) -> None:
    if token:
        with db.session() as s:
            s.execute(delete(AdminSession).where(AdminSession.id == _hash(token)))
