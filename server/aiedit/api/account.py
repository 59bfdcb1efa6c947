"""The caller's account: balance, plan and limits (`GET /v1/account`), its credit history
(`GET /v1/account/ledger`), and deleting it (`DELETE /v1/account`, hosted mode, with the
password). An account belongs to a user; it is made on first use."""

from __future__ import annotations

import math

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from aiedit.api.errors import ApiError
from aiedit.billing import ledger
from aiedit.store.db import as_utc
from aiedit.store.models import Account, User

blp = Blueprint("account", __name__, url_prefix="/v1", description="Your account and credits")


class AccountLimitsSchema(Schema):
    daily_credits = fields.Integer(
        allow_none=True, required=True,
        metadata={"description": "Credits the account may spend a day (null: no ceiling)"},
    )
    spent_today = fields.Integer(required=True, metadata={"description": "Since 00:00 UTC"})
    max_queued = fields.Integer(allow_none=True, required=True)
    daily_units = fields.Float(allow_none=True, required=True)


class AccountSchema(Schema):
    id = fields.String(required=True, metadata={"description": "Opaque account id"})
    name = fields.String(required=True, metadata={"description": "The user name"})
    role = fields.String(required=True)
    balance = fields.Integer(required=True, metadata={"description": "Credits you can spend"})
    held = fields.Integer(
        required=True, metadata={"description": "Credits held for your unfinished jobs"}
    )
    plan = fields.String(allow_none=True, required=True)
    limits = fields.Nested(AccountLimitsSchema, required=True)
    suspended = fields.Boolean(required=True)
    created_at = fields.AwareDateTime(required=True)


class LedgerEntrySchema(Schema):
    id = fields.Integer(required=True)
    amount = fields.Integer(required=True, metadata={"description": "Credits; negative: taken"})
    kind = fields.String(
        required=True, metadata={"description": "grant, purchase, subscription, refund, hold, "
                                 "charge (a hold kept: 0), release (a hold given back)"},
    )
    job_id = fields.String(allow_none=True, required=True)
    reason = fields.String(required=True)
    created_at = fields.String(required=True)


class AccountDeletionSchema(Schema):
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=1024),
        metadata={"description": "The account's password (the one used on the account pages)"},
    )


class LedgerArgs(Schema):
    limit = fields.Integer(load_default=100, validate=lambda n: 1 <= n <= 1000)
    offset = fields.Integer(load_default=0, validate=lambda n: n >= 0)


def account_json(db, account: Account, user: User, daily_default: int) -> dict:
    with db.session() as s:
        limit = account.daily_credit_limit
        limit = limit if limit is not None else (daily_default or None)
        return {
            "id": account.id,
            "name": user.name,
            "role": user.role,
            "balance": ledger.balance(s, account.id),
            "held": ledger.held(s, account.id),
            "plan": account.plan,
            "limits": {
                "daily_credits": limit,
                "spent_today": ledger.spent_today(s, account.id),
                "max_queued": user.max_queued,
                "daily_units": user.daily_units,
            },
            "suspended": account.suspended_at is not None,
            "created_at": as_utc(account.created_at),
        }


def caller_account() -> tuple[Account, User]:
    """The account of the calling key's user (404 `no_account` for keys without a user)."""
    services = current_app.extensions["aiedit"]
    name = g.principal.user
    if name is None:
        raise ApiError(
            404, "no_account",
            "this key belongs to no user, so it has no account: use a key made for a user "
            "(`aiedit keys create --user NAME`)",
        )
    account = ledger.ensure_account(services.db, name)
    with services.db.session() as s:
        user = s.get(User, name)
    return account, user


@blp.route("/account")
class AccountView(MethodView):
    @blp.response(200, AccountSchema)
    @blp.alt_response(404, description="The key belongs to no user")
    def get(self):
        """Your account: id, name, credit balance, plan and limits"""
        services = current_app.extensions["aiedit"]
        account, user = caller_account()
        return account_json(services.db, account, user, services.config.daily_credit_limit)

    @blp.arguments(AccountDeletionSchema)
    @blp.response(204)
    @blp.alt_response(403, description="Wrong password (`wrong_password`)")
    @blp.alt_response(404, description="Not a hosted server, or the key belongs to no user")
    @blp.alt_response(409, description="An account made by an admin, without a password")
    @blp.alt_response(429, description="Too many wrong passwords (`rate_limited`)")
    def delete(self, body):
        """Delete your account: its keys, jobs, images and data, now (needs your password)

        Ledger rows needed for tax records stay only as anonymous amounts."""
        from aiedit.accounts import people
        from aiedit.accounts.throttle import (
            Throttled,
            charge_wrong_password,
            check_password_attempt,
        )
        from aiedit.privacy.erase import erase_user

        services = current_app.extensions["aiedit"]
        if not services.config.hosted:
            raise ApiError(404, "not_available",
                           "accounts are deleted here only on hosted servers; ask an admin "
                           "(`aiedit users erase NAME`)")
        name = g.principal.user
        person = people.get_person(services.db, name) if name else None
        if name is None:
            caller_account()  # 404 no_account
        if person is None:
            raise ApiError(409, "no_password",
                           f"user {name} was made by an admin and has no password to confirm "
                           "with: ask an admin to erase it (`aiedit users erase NAME`)")
        throttles = current_app.extensions["aiedit.account_throttles"]
        address = request.remote_addr or "?"
        try:
            check_password_attempt(throttles, services.config, address, person.email)
        except Throttled as exc:
            retry = max(1, math.ceil(exc.wait_s))
            raise ApiError(429, "rate_limited", exc.message,
                           headers={"Retry-After": str(retry)}) from None
        if not people.verify_password(services.db, name, body["password"]):
            charge_wrong_password(throttles, address, person.email)
            raise ApiError(403, "wrong_password",
                           "that is not the account's password: nothing was deleted")
        erase_user(services, name)


@blp.route("/account/ledger")
class AccountLedger(MethodView):
    @blp.arguments(LedgerArgs, location="query")
    @blp.response(200, LedgerEntrySchema(many=True))
    def get(self, args):
        """Your credit history, newest first: purchases, grants, and each job's hold, charge
        or release"""
        services = current_app.extensions["aiedit"]
        account, _ = caller_account()
        with services.db.session() as s:
            rows = ledger.entries(s, account.id, limit=args["limit"], offset=args["offset"])
            return [ledger.entry_json(r) for r in rows]
