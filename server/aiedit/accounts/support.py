"""The support and feedback form (hosted mode): a message and, optionally, the job it is about,
kept for the admins, who read them on the admin page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from aiedit.accounts.people import AccountError
from aiedit.store.db import Database, utcnow
from aiedit.store.models import SupportMessage, User

MAX_MESSAGE = 5000
MAX_JOB_ID = 32


@dataclass(frozen=True)
class Message:
    id: int
    user: str
    name: str
    email: str
    job_id: str | None
    message: str
    created_at: datetime


def send(db: Database, user: str, message: str, job_id: str = "") -> int:
    message, job_id = check(message, job_id)
    with db.session() as s:
        row = SupportMessage(user=user, job_id=job_id or None, message=message,
                             created_at=utcnow())
        s.add(row)
        s.flush()
        return row.id


def check(message: str, job_id: str = "") -> tuple[str, str]:
    """The message and job id as they will be stored; AccountError names a wrong field."""
    message = (message or "").strip()
    job_id = (job_id or "").strip()
    if not message:
        raise AccountError("message", "write a message")
    if len(message) > MAX_MESSAGE:
        raise AccountError("message", f"a message has at most {MAX_MESSAGE} characters "
                           f"(this one has {len(message)})")
    if job_id and not (job_id.isascii() and job_id.isalnum() and len(job_id) <= MAX_JOB_ID):
        raise AccountError("job_id", "a job id is the letters and digits shown in the usage "
                           "history (or leave it empty)")
    return message, job_id


def recent(db: Database, limit: int = 50) -> list[Message]:
    """The newest messages with who sent them, for the admin page."""
    with db.session() as s:
        rows = s.execute(
            select(SupportMessage, User)
            .join(User, User.name == SupportMessage.user)
            .order_by(SupportMessage.created_at.desc(), SupportMessage.id.desc())
            .limit(limit)
        ).all()
    return [Message(m.id, m.user, u.display_name or u.name, u.email or "", m.job_id, m.message,
                    m.created_at) for m, u in rows]
