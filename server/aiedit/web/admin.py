"""The admin page at /admin: the queue with cancel buttons, workers and the models they hold,
users and their usage, the prompt block list and refused prompts per account. Server-rendered
(Jinja), no build step; its one script is a static file (the page CSP allows no inline script).
Not part of the JSON API, so not in the OpenAPI document.

Signing in takes an admin API key (or, on a key-less server, a click from this machine); the
session lives server-side (auth/sessions.py) behind an HttpOnly, SameSite=Strict cookie that is
Secure unless the server listens on loopback only. Every POST carries the session's CSRF token
(the sign-in form a token tied to a cookie of its own)."""

from __future__ import annotations

import math
from datetime import timedelta

from flask import Blueprint, current_app, make_response, redirect, render_template, request, url_for

from aiedit import __version__
from aiedit.accounts import analytics, people, support
from aiedit.api.auth import keys_required
from aiedit.api.metrics import is_loopback
from aiedit.auth import blocklist
from aiedit.auth.keys import LOCAL_OWNER, Principal, authenticate
from aiedit.auth.sessions import (
    Session,
    close_session,
    find_session,
    new_token,
    open_session,
    tokens_match,
)
from aiedit.jobs import overview
from aiedit.jobs.runner import QUEUED, RUNNING
from aiedit.store.db import as_utc, utcnow
from aiedit.store.models import Job

blp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
SESSION_COOKIE = "aiedit_admin"
SIGN_IN_COOKIE = "aiedit_admin_signin"  # the sign-in form's CSRF token
COOKIE_PATH = "/admin"
REFRESH_MS = 2000


def _services():
    return current_app.extensions["aiedit"]


def _https() -> bool:
    """Over TLS, or behind a proxy that says so (the header can only add the Secure flag)."""
    return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def _cookie_flags() -> dict:
    secure = _https() or not _services().config.is_loopback
    return {"httponly": True, "samesite": "Strict", "secure": secure, "path": COOKIE_PATH}


def _secure_cookie_over_http() -> bool:
    """Browsers drop a Secure cookie set over plain HTTP: say so instead of failing silently."""
    return _cookie_flags()["secure"] and not _https()


def _local_sign_in_allowed() -> bool:
    """A server without keys trusts its own machine (as the API does): no key to type. Once a
    key was ever created (even if all are revoked since), it needs one."""
    return not keys_required(current_app) and is_loopback(request.remote_addr)


def _session() -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return find_session(_services().db, token, allow_local=_local_sign_in_allowed())


@blp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.get("")
@blp.get("/")
def index():
    session = _session()
    if session is None:
        return _sign_in_page()
    return render_template("admin.html", **_dashboard(session))


@blp.post("/login")
def login():
    if not tokens_match(request.form.get("csrf_token"), request.cookies.get(SIGN_IN_COOKIE)):
        return _refused_form()
    services = _services()
    key = request.form.get("key", "").strip()
    if not key and _local_sign_in_allowed():
        principal = Principal(owner=LOCAL_OWNER, role="admin", key_name="local owner")
        key_id = LOCAL_OWNER
    else:
        limits = current_app.extensions["aiedit.rate_limits"]
        address = request.remote_addr or "?"
        wait = limits.failures_wait(address)
        if wait:
            return _sign_in_page(f"Too many failed sign-ins from this address: wait "
                                 f"{math.ceil(wait)} s and try again.", 429)
        principal = authenticate(services.db, key) if key else None
        if principal is None:
            limits.charge_failure(address)
            return _sign_in_page("That key is unknown or revoked.", 401)
        if not principal.is_admin:
            return _sign_in_page(
                "That key is not an admin key. Sign in with the key of an admin user "
                "(`aiedit users create NAME --role admin`) or one created with "
                "`aiedit keys create --name NAME --role admin`.",
                403,
            )
        key_id = key.split("_", 2)[1]
    lifetime = timedelta(hours=services.config.admin_session_hours)
    token, _ = open_session(services.db, key_id, principal, lifetime)
    response = redirect(url_for(".index"), 303)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(lifetime.total_seconds()),
                        **_cookie_flags())
    response.delete_cookie(SIGN_IN_COOKIE, **_cookie_flags())
    return response


@blp.post("/logout")
def logout():
    session = _session()
    if session is None:
        return redirect(url_for(".index"), 303)
    if not tokens_match(request.form.get("csrf_token"), session.csrf_token):
        return _refused_form()
    close_session(_services().db, request.cookies.get(SESSION_COOKIE))
    response = redirect(url_for(".index"), 303)
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags())
    return response


@blp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    refusal = _form_refusal()
    if refusal is not None:
        return refusal
    services = _services()
    with services.db.session() as s:
        job = s.get(Job, job_id) if job_id.isalnum() and len(job_id) <= 32 else None
    if job is None:
        return redirect(url_for(".index", notice="gone"), 303)
    if job.state in (QUEUED, RUNNING):
        done = "stopping" if services.runner.cancel(job.id) == RUNNING else "canceled"
    else:
        done = job.state
    return redirect(url_for(".index", notice=done, job=job.id[:8]), 303)


@blp.post("/blocklist")
def blocklist_change():
    """Add a term to the prompt block list, or remove one (the form's `action`)."""
    refusal = _form_refusal()
    if refusal is not None:
        return refusal
    db = _services().db
    term = request.form.get("term", "")
    try:
        if request.form.get("action") == "remove":
            notice = "term-removed" if blocklist.remove_term(db, term) else "term-missing"
        else:
            blocklist.add_term(db, term)
            notice = "term-added"
    except blocklist.BlocklistError as exc:
        return make_response(
            render_template("admin_message.html", title="Block list unchanged",
                            version=__version__, message=str(exc)),
            422,
        )
    return redirect(url_for(".index", notice=notice) + "#blocklist", 303)


@blp.post("/users/<name>/suspend")
def suspend_user(name: str):
    return _suspension(name, True)


@blp.post("/users/<name>/unsuspend")
def unsuspend_user(name: str):
    return _suspension(name, False)


def _suspension(name: str, suspend: bool):
    """Hosted mode: suspend an account (keys answer 403, unfinished jobs canceled, credits
    back) or lift the suspension."""
    from aiedit.auth.users import get_user
    from aiedit.billing import suspension

    refusal = _form_refusal()
    if refusal is not None:
        return refusal
    services = _services()
    if not services.config.hosted or len(name) > 64 or get_user(services.db, name) is None:
        return redirect(url_for(".index", notice="no_user"), 303)
    if suspend:
        canceled = suspension.suspend(services.runner, name,
                                      request.form.get("reason", "")[:500])
        notice = "suspended" if canceled is not None else "already_suspended"
    else:
        notice = "unsuspended" if suspension.unsuspend(services.runner, name) else "not_suspended"
    return redirect(url_for(".index", notice=notice), 303)


def _accounts(db) -> dict[str, dict]:
    """Hosted mode: each user's balance and account state, for the Users table."""
    from sqlalchemy import select

    from aiedit.billing import ledger
    from aiedit.store.models import Account, User

    with db.session() as s:
        accounts = {a.user: a for a in s.scalars(select(Account).where(Account.user.is_not(None)))}
        return {
            name: {"balance": ledger.balance(s, a.id) if a else 0,
                   "suspended": bool(a and a.suspended_at is not None),
                   "flagged": bool(a and a.flagged_at is not None),
                   "flag_reason": a.flag_reason if a else ""}
            for name in s.scalars(select(User.name))
            for a in [accounts.get(name)]
        }


def _sign_in_page(error: str | None = None, status: int = 200):
    token = request.cookies.get(SIGN_IN_COOKIE)
    if not token or len(token) > 100:
        token = new_token()
    response = make_response(
        render_template("admin_login.html", csrf_token=token, error=error,
                        local=_local_sign_in_allowed(), version=__version__,
                        plain_http=_secure_cookie_over_http()),
        status,
    )
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, **_cookie_flags())
    return response


def _form_refusal():
    """The answer refusing a form post without a signed-in admin or with a wrong CSRF token;
    None when the post may go ahead."""
    session = _session()
    if session is None:
        return _sign_in_page("Sign in first.", 401)
    if not tokens_match(request.form.get("csrf_token"), session.csrf_token):
        return _refused_form()
    return None


def _refused_form():
    return make_response(
        render_template("admin_message.html", title="Form refused", version=__version__,
                        message="This form was not sent from this admin page (its security "
                        "token is missing or wrong). Reload the page and try again."),
        403,
    )


def _dashboard(session: Session) -> dict:
    from aiedit.api.jobs import job_json

    services = _services()
    db = services.db
    names = overview.owner_names(db)
    jobs = [
        job_json(job) | {"owner": names.get(job.owner, job.owner), "device": job.device}
        for job in overview.active_jobs(db)
    ]
    recent = [
        {"id": job.id, "owner": names.get(job.owner, job.owner), "operation": job.operation,
         "model": job.model, "state": job.state, "error": (job.error or {}).get("code"),
         "duration": _seconds(job.started_at, job.finished_at),
         "finished": _ago(job.finished_at)}
        for job in overview.recent_jobs(db)
    ]
    for job in jobs:
        since = job["started_at"] if job["state"] == RUNNING else job["created_at"]
        job["since"] = _ago(since)
    # running first, then in the order the queue will start them (fair order in studio mode)
    jobs.sort(key=lambda j: (j["state"] != RUNNING, j["queue_position"] or 0))
    workers = services.queue.workers()
    return {
        "session": session,
        "csrf_token": session.csrf_token,
        "version": __version__,
        "mode": services.config.mode,
        "jobs": jobs,
        "running": sum(j["state"] == RUNNING for j in jobs),
        "queued": sum(j["state"] == QUEUED for j in jobs),
        "workers": [
            {"name": w.name, "device": w.device, "job": w.job_id, "models": w.models,
             "seen": _ago(w.last_seen) if w.last_seen else "now (in this process)"}
            for w in workers
        ],
        "usage": overview.usage(db),
        "hosted": services.config.hosted,
        # hosted: per-feature counts of accounts that did not opt out; the support messages
        "features": analytics.totals(db) if services.config.hosted else [],
        "support": support.recent(db) if services.config.hosted else [],
        "people": people.names_and_emails(db) if services.config.hosted else {},
        "blocked_terms": blocklist.list_terms(db),
        "refusals": sorted(
            ({"owner": names.get(owner, owner), "count": row.count, "last": _ago(row.last_at)}
             for owner, row in blocklist.refusals(db).items()),
            key=lambda r: -r["count"],
        ),
        "accounts": _accounts(db) if services.config.hosted else {},
        "recent": recent,
        "notice": _notice(),
        "refresh_ms": REFRESH_MS,
    }


NOTICES = {
    "canceled": "Job {job} canceled.",
    "stopping": "Job {job} stops at its next step.",
    "succeeded": "Job {job} had already succeeded.",
    "failed": "Job {job} had already failed.",
    "gone": "That job is gone (it expired or was deleted).",
    "term-added": "Term added to the block list.",
    "term-removed": "Term removed from the block list.",
    "term-missing": "That term was not on the block list.",
    "suspended": "Account suspended: its keys are refused, its unfinished jobs canceled.",
    "already_suspended": "That account was already suspended.",
    "unsuspended": "Suspension lifted.",
    "not_suspended": "That account was not suspended.",
    "no_user": "There is no such user.",
}


def _notice() -> str:
    """The outcome of a cancel, from a fixed set (a link cannot put words on this page)."""
    text = NOTICES.get(request.args.get("notice", ""))
    job = request.args.get("job", "")
    if not text or ("{job}" in text and not (job.isalnum() and len(job) <= 8)):
        return ""
    return text.format(job=job)


def _ago(when) -> str:
    if when is None:
        return ""
    return _span((utcnow() - as_utc(when)).total_seconds())


def _seconds(start, end) -> str:
    if start is None or end is None:
        return ""
    return _span((as_utc(end) - as_utc(start)).total_seconds())


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
