"""Users (studio mode): a user owns the jobs of all of their keys and may have limits."""

from __future__ import annotations

import re

from sqlalchemy import select

from aiedit.store.db import Database, utcnow
from aiedit.store.models import User

ROLES = ("admin", "member")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
KEY_ID = re.compile(r"^[0-9a-f]{12}$")  # owners of jobs made with user-less keys
RESERVED = {"local"}


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


def check_name(name: str) -> str:
    if not NAME.match(name) or KEY_ID.match(name) or name in RESERVED:
        raise UserError(
            f"invalid user name {name!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter (not 'local', not 12 hex digits)"
        )
    return name


def create_user(db: Database, name: str, role: str = "member") -> User:
    check_name(name)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
    with db.session() as s:
        if s.get(User, name) is not None:
            raise UserError(f"user {name!r} already exists")
        user = User(name=name, role=role, created_at=utcnow())
        s.add(user)
    return user


def get_user(db: Database, name: str) -> User | None:
    with db.session() as s:
        return s.get(User, name)


def list_users(db: Database) -> list[User]:
    with db.session() as s:
        return list(s.scalars(select(User).order_by(User.name)))


def set_limits(
    db: Database, name: str, max_queued: int | None = None, daily_units: float | None = None,
    clear: bool = False,
) -> User:
    """Set the given limits (a negative value or `clear` removes a limit)."""
    with db.session() as s:
        user = s.get(User, name)
        if user is None:
            raise UserError(f"no user {name!r} (create it with `aiedit users create {name}`)")
        if clear:
            user.max_queued = user.daily_units = None
        if max_queued is not None:
            user.max_queued = None if max_queued < 0 else max_queued
        if daily_units is not None:
            user.daily_units = None if daily_units < 0 else daily_units
    return user
