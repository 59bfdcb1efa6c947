"""People with accounts (hosted mode): sign-up with an email, a name and a password (an argon2id
hash is stored, never the password), sign-in, and the account data a person can see and correct.

A person's user row is named with a generated id (`u` and 12 hex digits): it owns their jobs and
keys and appears in the ledger, so it never changes when they correct their name or email."""

from __future__ import annotations

import functools
import re
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aiedit.store.db import Database, utcnow
from aiedit.store.models import User

MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # hashing a longer one is work for nothing (and a way to burn CPU)
MAX_NAME = 100
MAX_EMAIL = 254
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")


@functools.cache
def _argon():
    """argon2id with the library's current recommended parameters, and a hash of a random
    password to spend the same work on unknown emails. Imported on first use: argon2-cffi
    comes with the `hosted` extra, and a base install never signs people in."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    return hasher, hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """Bad input for an account; `field` names the form field, the message says what to do."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Person:
    """What the account pages show of a user."""

    id: str
    name: str
    email: str
    role: str
    analytics_opt_out: bool
    created_at: object

    @classmethod
    def of(cls, user: User) -> Person:
        return cls(user.name, user.display_name or "", user.email or "", user.role,
                   bool(user.analytics_opt_out), user.created_at)


def clean_email(email: str) -> str:
    """Emails are kept in lower case, so one address has one account however it is typed."""
    email = (email or "").strip()
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        raise AccountError("email", "enter an email address such as name@example.com")
    return email.lower()


def clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise AccountError("name", "enter your name")
    if len(name) > MAX_NAME:
        raise AccountError("name", f"a name has at most {MAX_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise AccountError("name", "a name cannot contain control characters")
    return name


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError("password", f"choose a password of at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError("password", f"a password has at most {MAX_PASSWORD} characters")
    return password


def _find_by_email(s, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == email.lower()))


def check_sign_up(email: str, name: str, password: str, age_confirmed: bool,
                  min_age: int) -> tuple[str, str]:
    """The cleaned email and name of a sign-up form; AccountError names a wrong field."""
    email, name = clean_email(email), clean_name(name)
    check_password(password)
    if not age_confirmed:
        raise AccountError("age", f"you must be at least {min_age} years old to have an account")
    return email, name


def sign_up(db: Database, email: str, name: str, password: str, age_confirmed: bool,
            min_age: int) -> Person:
    """Create a person's account; raises AccountError naming the field that is wrong."""
    email, name = check_sign_up(email, name, password, age_confirmed, min_age)
    password_hash = _argon()[0].hash(password)
    try:
        with db.session() as s:
            if _find_by_email(s, email) is not None:
                raise AccountError("email", "an account with this email address exists: sign in")
            now = utcnow()
            user = User(name=f"u{secrets.token_hex(6)}", role="member", created_at=now,
                        email=email, display_name=name, password_hash=password_hash,
                        age_confirmed_at=now, analytics_opt_out=False)
            s.add(user)
    except IntegrityError:  # the same email raced in
        raise AccountError("email", "an account with this email address exists: sign in") from None
    return Person.of(user)


def sign_in(db: Database, email: str, password: str) -> Person | None:
    """The person with this email and password, or None. An unknown email costs the same hash
    work as a wrong password, so timing does not tell which accounts exist."""
    email = (email or "").strip()
    if not email or len(email) > MAX_EMAIL or len(password or "") > MAX_PASSWORD:
        return None
    with db.session() as s:
        user = _find_by_email(s, email)
    if user is None or not user.password_hash:
        _verify(_argon()[1], password or "")
        return None
    if not _verify(user.password_hash, password or ""):
        return None
    if _argon()[0].check_needs_rehash(user.password_hash):
        with db.session() as s:
            s.get(User, user.name).password_hash = _argon()[0].hash(password)
    return Person.of(user)


def verify_password(db: Database, user_name: str, password: str) -> bool:
    """Whether `password` is this person's (for deleting the account or changing the email)."""
    if len(password or "") > MAX_PASSWORD:
        return False
    with db.session() as s:
        user = s.get(User, user_name)
    if user is None or not user.password_hash:
        _verify(_argon()[1], password or "")
        return False
    return _verify(user.password_hash, password or "")


def _verify(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _argon()[0].verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def get_person(db: Database, user_name: str) -> Person | None:
    with db.session() as s:
        user = s.get(User, user_name)
    return Person.of(user) if user is not None and user.password_hash else None


def update_profile(db: Database, user_name: str, name: str, email: str) -> Person:
    """Correct the name and email (the caller checks the password for a new email)."""
    name, email = clean_name(name), clean_email(email)
    try:
        with db.session() as s:
            user = s.get(User, user_name)
            other = _find_by_email(s, email)
            if other is not None and other.name != user_name:
                raise AccountError("email", "another account uses this email address")
            user.display_name, user.email = name, email
    except IntegrityError:
        raise AccountError("email", "another account uses this email address") from None
    return Person.of(user)


def set_analytics_opt_out(db: Database, user_name: str, opt_out: bool) -> None:
    with db.session() as s:
        s.get(User, user_name).analytics_opt_out = opt_out


def names_and_emails(db: Database) -> dict[str, str]:
    """user id -> "name · email" of everyone who signed up (for the admin page)."""
    with db.session() as s:
        rows = s.execute(select(User.name, User.display_name, User.email)
                         .where(User.email.is_not(None))).all()
    return {name: f"{display or '?'} · {email}" for name, display, email in rows}
