"""Account pages at /account (hosted mode): sign-up, sign-in and sign-out; balance and buying
credits; API keys; usage history; data export; account deletion; the support form; the person's
name, email and analytics choice. Server-rendered (Jinja), no script, no build step; not part of
the JSON API, so not in the OpenAPI document.

Stable addresses the plugins open ("Get a key", "Buy credits"): /account/keys and
/account/credits (signed-out visitors go through /account/signin and come back).

Cookies: the session (`aiedit_session`: HttpOnly, SameSite=Lax so a person returning from the
payment page is still signed in, Secure unless the server listens on loopback only) and, before
signing in, the sign-in and sign-up forms' CSRF token (`aiedit_csrf`: HttpOnly, SameSite=Strict).
Nothing else. Every POST carries the CSRF token (the session's once signed in); a missing or wrong
one is refused with 403, as is a cross-site request (api/security.py checks Origin first)."""

from __future__ import annotations

import functools
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from aiedit import __version__
from aiedit.accounts import people, support
from aiedit.accounts.people import AccountError, Person
from aiedit.accounts.sessions import PageSession, close_session, find_session
from aiedit.accounts.sessions import open_session as open_page_session
from aiedit.accounts.throttle import (
    AccountThrottles,
    Throttled,
    charge_wrong_password,
    check_password_attempt,
    minutes,
    redis_for,
)
from aiedit.auth.keys import create_key, revoke_key
from aiedit.auth.sessions import new_token, tokens_match
from aiedit.billing import ledger
from aiedit.store.models import ApiKey, Job

blp = Blueprint("account_pages", __name__, url_prefix="/account", template_folder="templates")
SESSION_COOKIE = "aiedit_session"
CSRF_COOKIE = "aiedit_csrf"  # the sign-in and sign-up forms' token, before there is a session
COOKIE_PATH = "/account"
MAX_KEYS = 20  # active keys per account
MAX_KEY_NAME = 100
HISTORY = 100  # jobs on the usage page
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def init_app(app) -> None:
    app.extensions["aiedit.account_throttles"] = AccountThrottles(
        app.extensions["aiedit"].config, redis_for(app))
    app.register_blueprint(blp)


def _services():
    return current_app.extensions["aiedit"]


def _throttles() -> AccountThrottles:
    return current_app.extensions["aiedit.account_throttles"]


def _https() -> bool:
    return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def _cookie_flags(samesite: str) -> dict:
    secure = _https() or not _services().config.is_loopback
    return {"httponly": True, "samesite": samesite, "secure": secure, "path": COOKIE_PATH}


def _session() -> PageSession | None:
    if "account_session" not in g:
        g.account_session = find_session(_services().db, request.cookies.get(SESSION_COOKIE))
    return g.account_session


def _person(session: PageSession) -> Person:
    person = people.get_person(_services().db, session.user)
    if person is None:  # erased while the page was open
        abort(_redirect_to_sign_in())
    return person


def _address() -> str:
    return request.remote_addr or "?"


@blp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


# --- pages for signed-in people -------------------------------------------------------------


def _signed_in(view):
    """Run `view(session, person)` for a signed-in person; others go to the sign-in page (and
    come back here). A POST must carry the session's CSRF token."""

    @functools.wraps(view)
    def wrapper(**kwargs):
        session = _session()
        if session is None:
            if request.method == "POST":
                return _message("Signed out", "Your session has ended: sign in again.", 401)
            return _redirect_to_sign_in()
        if request.method == "POST" and not tokens_match(request.form.get("csrf_token"),
                                                         session.csrf_token):
            return _refused_form()
        return view(session, _person(session), **kwargs)

    return wrapper


def _page(template: str, session: PageSession, person: Person, status: int = 200, **context):
    with _services().db.session() as s:
        suspended = ledger.suspension(s, person.id)
        suspended = (suspended.suspended_reason or "no reason given") if suspended else None
    return make_response(
        render_template(template, person=person, csrf_token=session.csrf_token,
                        suspended=suspended,
                        version=__version__, section=template.removeprefix("account_")
                        .removesuffix(".html"), **context),
        status,
    )


@blp.get("")
@blp.get("/")
@_signed_in
def home(session, person):
    return _page("account_home.html", session, person, balance=_balance(person.id),
                 keys=len(_active_keys(person.id)))


@blp.get("/credits")
@_signed_in
def credits(session, person):
    return _credits_page(session, person)


@blp.post("/credits/checkout")
@_signed_in
def checkout(session, person):
    """Open a Stripe Checkout Session for a pack or plan and send the person to it."""
    from aiedit.billing.stripe_billing import BillingError, create_checkout

    services = _services()
    kind = "plan" if request.form.get("plan") else "pack"
    item = services.billing.item(kind, request.form.get(kind, "")) if services.billing else None
    if item is None:
        return _credits_page(session, person, 400,
                             error=f"That {kind} is not on sale (any more): choose one below.")
    account = ledger.ensure_account(services.db, person.id)
    return_url = services.config.billing_return_url or request.url_root + "account/credits"
    try:
        opened = create_checkout(services, account, item, return_url)
    except BillingError as exc:
        return _credits_page(session, person, exc.status, error=exc.message)
    return redirect(opened["url"], 303)


def _credits_page(session, person, status: int = 200, **context):
    # The Buy forms are answered with a redirect to the payment page: the page's CSP must let
    # a form lead there.
    g.form_action_origins = [_checkout_origin()]
    billing = _services().billing
    plans = sorted(billing.plans.values(), key=lambda p: p.credits) if billing else []
    return _page("account_credits.html", session, person, status, balance=_balance(person.id),
                 packs=_packs(), plans=plans, checkout=request.args.get("checkout", ""),
                 history=_credit_history(person.id), **context)


def _credit_history(user: str) -> list[dict]:
    """Purchases, plan credits, grants and refunds, newest first (jobs are on the usage page)."""
    db = _services().db
    account = ledger.ensure_account(db, user)
    with db.session() as s:
        rows = ledger.entries(s, account.id, limit=200)
    shown = (ledger.GRANT, ledger.PURCHASE, ledger.SUBSCRIPTION, ledger.REFUND)
    return [ledger.entry_json(r) | {"when": r.created_at} for r in rows if r.kind in shown][:50]


def _checkout_origin() -> str:
    """Where Stripe's payment pages are: its Checkout origin, or the Stripe-compatible server
    the settings name (tests: the local one)."""
    base = _services().config.stripe_api_base
    if not base:
        return STRIPE_CHECKOUT_ORIGIN
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


@blp.get("/keys")
@_signed_in
def keys(session, person):
    return _page("account_keys.html", session, person, keys=_keys(person.id))


@blp.post("/keys")
@_signed_in
def create_key_view(session, person):
    name = " ".join(request.form.get("name", "").split())
    error = None
    if not name or len(name) > MAX_KEY_NAME:
        error = f"Give the key a name of 1 to {MAX_KEY_NAME} characters (e.g. “Krita laptop”)."
    elif len(_active_keys(person.id)) >= MAX_KEYS:
        error = f"An account has at most {MAX_KEYS} active keys: revoke one you no longer use."
    if error:
        return _page("account_keys.html", session, person, 400, keys=_keys(person.id),
                     error=error)
    row, secret = create_key(_services().db, name, user=person.id)
    return _page("account_keys.html", session, person, 201, keys=_keys(person.id),
                 new_key=secret, new_key_name=row.name)


@blp.post("/keys/<key_id>/revoke")
@_signed_in
def revoke_key_view(session, person, key_id: str):
    services = _services()
    with services.db.session() as s:
        row = s.get(ApiKey, key_id) if key_id.isalnum() and len(key_id) <= 16 else None
    if row is None or row.user != person.id:
        return _page("account_keys.html", session, person, 404, keys=_keys(person.id),
                     error="There is no such key on your account.")
    revoke_key(services.runner, key_id)
    return redirect(url_for(".keys"), 303)


@blp.get("/usage")
@_signed_in
def usage(session, person):
    from aiedit.api.jobs import job_json

    with _services().db.session() as s:
        jobs = list(s.scalars(select(Job).where(Job.owner == person.id)
                              .order_by(Job.created_at.desc()).limit(HISTORY)))
    return _page("account_usage.html", session, person, jobs=[job_json(j) for j in jobs],
                 retention_hours=_services().config.retention_hours)


@blp.get("/export")
@_signed_in
def export_page(session, person):
    return _page("account_export.html", session, person)


@blp.post("/export")
@_signed_in
def export(session, person):
    """The account's data as one zip (the same as GET /v1/account/export), streamed."""
    from aiedit.privacy.export import stream_export

    return current_app.response_class(
        stream_export(_services(), person.id), mimetype="application/zip",
        headers={"Content-Disposition": 'attachment; filename="aiedit-account.zip"'})


@blp.get("/delete")
@_signed_in
def delete_page(session, person):
    return _page("account_delete.html", session, person)


@blp.post("/delete")
@_signed_in
def delete(session, person):
    """Erase the account (as DELETE /v1/account) once the password is confirmed."""
    try:
        if not _password_ok(person):
            return _page("account_delete.html", session, person, 401,
                         error="That is not your password: the account was not deleted.")
    except Throttled as exc:
        return _page("account_delete.html", session, person, 429, error=str(exc))
    _erase(person.id)
    response = _message("Account deleted", "Your account, its keys, jobs and images are "
                        "deleted. Thank you for using aiedit.")
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags("Lax"))
    return response


@blp.get("/settings")
@_signed_in
def settings(session, person):
    return _page("account_settings.html", session, person)


@blp.post("/settings")
@_signed_in
def update_settings(session, person):
    db = _services().db
    name, email = request.form.get("name", ""), request.form.get("email", "")
    try:
        if people.clean_email(email) != person.email and not _password_ok(person):
            raise AccountError("password", "enter your current password to change your email")
        person = people.update_profile(db, person.id, name, email)
    except Throttled as exc:
        return _page("account_settings.html", session, person, 429, error=str(exc))
    except AccountError as exc:
        return _page("account_settings.html", session, person, 400, error=exc.message,
                     field=exc.field)
    return _page("account_settings.html", session, person, notice="Saved.")


@blp.post("/settings/analytics")
@_signed_in
def update_analytics(session, person):
    opt_out = request.form.get("analytics") != "on"
    people.set_analytics_opt_out(_services().db, person.id, opt_out)
    return redirect(url_for(".settings"), 303)


@blp.get("/support")
@_signed_in
def support_page(session, person):
    return _page("account_support.html", session, person,
                 job_id=request.args.get("job", "")[:32])


@blp.post("/support")
@_signed_in
def send_support(session, person):
    message, job_id = request.form.get("message", ""), request.form.get("job_id", "")
    limiter = _throttles().support
    try:
        support.check(message, job_id)
        wait = limiter.take(f"user:{person.id}") if limiter else 0.0
        if wait:
            per_day = _services().config.support_messages_per_day
            return _page("account_support.html", session, person, 429, message=message,
                         job_id=job_id[:32], error=f"You have sent {per_day} messages today, "
                         f"the most this server takes a day: try again in {minutes(wait)}.")
        support.send(_services().db, person.id, message, job_id)
    except AccountError as exc:
        return _page("account_support.html", session, person, 400, error=exc.message,
                     message=message[: support.MAX_MESSAGE + 1000], job_id=job_id[:32])
    return _page("account_support.html", session, person,
                 notice="Thank you: your message was sent to the people who run this server.")


def _password_ok(person: Person) -> bool:
    """Check the form's password (limited like sign-in failures: per account and address)."""
    _check_failures(person.email)
    if people.verify_password(_services().db, person.id, request.form.get("password", "")):
        return True
    _charge_failure(person.email)
    return False


# --- signing up, in and out -----------------------------------------------------------------


@blp.get("/signup")
def signup_page():
    if _session() is not None:
        return redirect(_next_url(), 303)
    return _form("account_signup.html", next=_next_url())


@blp.post("/signup")
def signup():
    if not _form_token_ok():
        return _refused_form()
    config = _services().config
    form = (request.form.get("email", ""), request.form.get("name", ""),
            request.form.get("password", ""), request.form.get("age") == "on", config.min_age)
    try:
        people.check_sign_up(*form)  # a mistyped form costs no sign-up from the address
        limiter = _throttles().sign_ups
        wait = limiter.take(f"addr:{_address()}") if limiter else 0.0
        if wait:
            return _form("account_signup.html", 429, next=_next_url(),
                         error=f"Too many sign-ups from this address (at most "
                         f"{config.sign_ups_per_address_per_hour} an hour): try again in "
                         f"{minutes(wait)}.")
        person = people.sign_up(_services().db, *form)
    except AccountError as exc:
        return _form("account_signup.html", 400, error=exc.message, field=exc.field,
                     next=_next_url(),
                     email=request.form.get("email", "")[:254],
                     name=request.form.get("name", "")[:100])
    return _start_session(person.id, _next_url())


@blp.get("/signin")
def signin_page():
    if _session() is not None:
        return redirect(_next_url(), 303)
    return _form("account_signin.html", next=_next_url())


@blp.post("/signin")
def signin():
    if not _form_token_ok():
        return _refused_form()
    email = request.form.get("email", "")
    try:
        _check_failures(email)
    except Throttled as exc:
        return _form("account_signin.html", 429, error=str(exc), email=email[:254],
                     next=_next_url())
    person = people.sign_in(_services().db, email, request.form.get("password", ""))
    if person is None:
        _charge_failure(email)
        return _form("account_signin.html", 401, email=email[:254], next=_next_url(),
                     error="That email and password do not match an account.")
    return _start_session(person.id, _next_url())


@blp.post("/signout")
def signout():
    session = _session()
    if session is not None:
        if not tokens_match(request.form.get("csrf_token"), session.csrf_token):
            return _refused_form()
        close_session(_services().db, request.cookies.get(SESSION_COOKIE))
    response = redirect(url_for(".signin_page"), 303)
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags("Lax"))
    return response


def _start_session(user: str, target: str):
    """A new session token at every sign-in; the one the browser held before (if any) ends."""
    services = _services()
    close_session(services.db, request.cookies.get(SESSION_COOKIE))
    lifetime = timedelta(hours=services.config.account_session_hours)
    token, _ = open_page_session(services.db, user, lifetime)
    response = redirect(target, 303)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(lifetime.total_seconds()),
                        **_cookie_flags("Lax"))
    response.delete_cookie(CSRF_COOKIE, **_cookie_flags("Strict"))
    return response


def _check_failures(email: str) -> None:
    check_password_attempt(_throttles(), _services().config, _address(), email)


def _charge_failure(email: str) -> None:
    charge_wrong_password(_throttles(), _address(), email)


def _next_url() -> str:
    """Where to go after signing in: a page of this site under /account only (never an
    address elsewhere, so the sign-in page cannot be made to send people away)."""
    target = request.values.get("next", "")
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not parts.path.startswith("/account")
            or "\\" in target or target.startswith("//")):
        return url_for(".home")
    return target


def _redirect_to_sign_in():
    return redirect(url_for(".signin_page", next=request.full_path.rstrip("?")), 303)


def _form_token_ok() -> bool:
    return tokens_match(request.form.get("csrf_token"), request.cookies.get(CSRF_COOKIE))


def _form(template: str, status: int = 200, **context):
    """A sign-in or sign-up form, with the CSRF token of its cookie (made if missing)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 100:
        token = new_token()
    config = _services().config
    response = make_response(
        render_template(template, csrf_token=token, version=__version__, min_age=config.min_age,
                        plain_http=_cookie_flags("Lax")["secure"] and not _https(), **context),
        status,
    )
    response.set_cookie(CSRF_COOKIE, token, max_age=3600, **_cookie_flags("Strict"))
    return response


def _refused_form():
    return _message("Form refused", "This form was not sent from this page (its security "
                    "token is missing or wrong). Reload the page and try again.", 403)


def _message(title: str, text: str, status: int = 200):
    return make_response(
        render_template("account_message.html", title=title, message=text, version=__version__),
        status,
    )


# --- keys, credits, export and erasure: the parts other modules own ----------------------------


def _keys(user: str) -> list[ApiKey]:
    with _services().db.session() as s:
        return list(s.scalars(select(ApiKey).where(ApiKey.user == user)
                              .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())))


def _active_keys(user: str) -> list[ApiKey]:
    return [k for k in _keys(user) if k.revoked_at is None]


def _erase(user: str) -> None:
    from aiedit.privacy.erase import erase_user

    erase_user(_services(), user)


def _balance(user: str) -> int:
    db = _services().db
    account = ledger.ensure_account(db, user)
    with db.session() as s:
        return ledger.balance(s, account.id)


def _packs() -> list:
    billing = _services().billing
    return sorted(billing.packs.values(), key=lambda p: p.credits) if billing else []

