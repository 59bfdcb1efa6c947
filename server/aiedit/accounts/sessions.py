"""Account page sessions (hosted mode), kept server-side: the browser's cookie holds a random
token, the database a SHA-256 of it, the person it belongs to and the session's CSRF token. A new
token is made at every sign-in (a token planted before it never becomes a session), and deleting
the person deletes their sessions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from aiedit.auth.sessions import new_token
from aiedit.store.db import Database, as_utc, utcnow
from aiedit.store.models import AccountSession, User

MAX_TOKEN = 100


@dataclass(frozen=True)
class PageSession:
    user: str
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(db: Database, user: str, lifetime: timedelta) -> tuple[str, PageSession]:
    """Start a session for a person who just proved who they are; returns the cookie token."""
    token, csrf = new_token(), new_token()
    now = utcnow()
    with db.session() as s:
        s.execute(delete(AccountSession).where(AccountSession.expires_at < now))
        s.add(AccountSession(id=_hash(token), user=user, csrf_token=csrf, created_at=now,
                             expires_at=now + lifetime))
    return token, PageSession(user, csrf)


def find_session(db: Database, token: str | None) -> PageSession | None:
    if not token or len(token) > MAX_TOKEN:
        return None
    with db.session() as s:
        row = s.get(AccountSession, _hash(token))
        if row is None or as_utc(row.expires_at) <= utcnow() or s.get(User, row.user) is None:
            return None
        return PageSession(row.user, row.csrf_token)


def close_session(db: Database, token: str | None) -> None:
    if token and len(token) <= MAX_TOKEN:
        with db.session() as s:
            s.execute(delete(AccountSession).where(AccountSession.id == _hash(token)))


def close_all(db: Database, user: str) -> None:
    with db.session() as s:
        s.execute(delete(AccountSession).where(AccountSession.user == user))
