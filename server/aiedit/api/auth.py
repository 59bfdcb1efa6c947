"""Who is asking: a Bearer key when the server needs keys, the local owner on a key-less loopback
server. Failed authentications are rate limited per client address, before the key is checked."""

from __future__ import annotations

import math

from flask import g, request

from aiedit.api.errors import ApiError
from aiedit.api.security import RateLimits
from aiedit.auth.keys import LOCAL_OWNER, KeyPolicy, Principal, authenticate, keys_exist

OPEN_PATHS = ("/v1/health", "/v1/billing/webhook")  # the webhook is signed instead
CREATE_HINT = "create one with `aiedit keys create --name NAME` (same --data-dir as the server)"


def init_app(app, policy: KeyPolicy, limits: RateLimits) -> None:
    app.extensions["aiedit.key_policy"] = policy
    app.extensions["aiedit.rate_limits"] = limits

    @app.before_request
    def identify():
        if not request.path.startswith("/v1/") or request.path in OPEN_PATHS:
            return
        g.principal = current_principal(app)
        if g.principal.user is not None and app.extensions["aiedit"].config.hosted:
            _refuse_if_suspended(app, g.principal.user)


def keys_required(app) -> bool:
    """Whether this server needs keys (see auth.keys.KeyPolicy)."""
    return app.extensions["aiedit.key_policy"].required()


def current_principal(app) -> Principal:
    policy: KeyPolicy = app.extensions["aiedit.key_policy"]
    limits: RateLimits = app.extensions["aiedit.rate_limits"]
    if not policy.required():
        return Principal(owner=LOCAL_OWNER, role="admin")
    address = request.remote_addr or "?"
    _refuse_if_failing(limits, limits.failures_wait(address))
    db = app.extensions["aiedit"].db
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        limits.charge_failure(address)
        if not keys_exist(db):
            raise _unauthorized(
                f"this server needs an API key and has no active one: {CREATE_HINT}, then send "
                "it as `Authorization: Bearer <key>`"
            )
        raise _unauthorized(
            "this server needs an API key: send `Authorization: Bearer <key>` "
            f"({CREATE_HINT})"
        )
    principal = authenticate(db, token.strip())
    if principal is None:
        limits.charge_failure(address)
        hint = "" if keys_exist(db) else f"; this server has no active key: {CREATE_HINT}"
        raise _unauthorized(
            f"API key rejected: it is unknown or revoked{hint}", error="invalid_token"
        )
    return principal


def _refuse_if_suspended(app, user: str) -> None:
    """Hosted mode: every key of a suspended account answers 403 `account_suspended`."""
    from aiedit.billing import ledger

    with app.extensions["aiedit"].db.session() as s:
        account = ledger.suspension(s, user)
    if account is not None:
        error = ledger.AccountSuspended(account.suspended_reason)
        raise ApiError(error.status, error.code, error.message)


def _unauthorized(message: str, error: str = "") -> ApiError:
    challenge = 'Bearer realm="aiedit"' + (f', error="{error}"' if error else "")
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _refuse_if_failing(limits: RateLimits, wait: float) -> None:
    if wait:
        retry = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"too many failed authentications from this address (at most "
            f"{limits.failures_per_minute} a minute); retry in {retry} s with a valid key",
            headers={"Retry-After": str(retry)},
        )
