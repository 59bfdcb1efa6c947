"""Prices and buying credits: `POST /v1/quotes` (any mode), and in hosted mode the packs and
plans on sale, a Checkout Session to buy one, and the Stripe webhook."""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from aiedit.api.account import caller_account
from aiedit.api.errors import ApiError
from aiedit.api.job_request import check_operation, fit_model, load_params, pick_model
from aiedit.billing import pricing
from aiedit.billing.stripe_billing import BillingError, create_checkout, handle_webhook
from aiedit.ops.base import INPUT_NAMES, registry

blp = Blueprint("billing", __name__, url_prefix="/v1", description="Prices and buying credits")

WEBHOOK_PATH = "/v1/billing/webhook"
MAX_SIDE = 1 << 20


def _services():
    return current_app.extensions["aiedit"]


class QuoteRequestSchema(Schema):
    operation = fields.String(required=True)
    model = fields.String(load_default=None, allow_none=True)
    params = fields.Dict(load_default=dict)
    sizes = fields.Dict(
        keys=fields.String(validate=validate.OneOf(INPUT_NAMES)),
        values=fields.List(fields.Integer(strict=True, validate=validate.Range(1, MAX_SIDE)),
                           validate=validate.Length(equal=2)),
        load_default=dict,
        metadata={"description": "Input sizes as [width, height], e.g. {\"image\": [1024, 768]}"},
    )


class QuoteSchema(Schema):
    credits = fields.Integer(required=True, metadata={"description": "The job's price"})
    operation = fields.String(required=True)
    model = fields.String(required=True)
    units = fields.Float(required=True, metadata={"description": "The operation's size measure"})
    rate = fields.Float(required=True, metadata={"description": "Credits per unit for the model"})
    steps_factor = fields.Float(required=True)
    rule = fields.String(required=True)
    charged = fields.Boolean(
        required=True, metadata={"description": "Whether this server charges credits (hosted)"}
    )


class CheckoutRequestSchema(Schema):
    pack = fields.String(load_default=None)
    plan = fields.String(load_default=None)

    @validates_schema
    def one_item(self, data, **kwargs):
        if (data.get("pack") is None) == (data.get("plan") is None):
            raise ValidationError("give either `pack` or `plan` (one of them)", "_schema")


class CheckoutSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True, metadata={"description": "Send the buyer here"})


class ItemSchema(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    credits = fields.Integer(required=True)


class ItemsSchema(Schema):
    packs = fields.List(fields.Nested(ItemSchema), required=True)
    plans = fields.List(fields.Nested(ItemSchema), required=True)


@blp.route("/quotes")
class Quotes(MethodView):
    @blp.arguments(QuoteRequestSchema)
    @blp.response(200, QuoteSchema)
    @blp.alt_response(422, description="Unknown operation or model, invalid params or sizes")
    def post(self, body):
        """The price of a job in credits, before submitting it"""
        services = _services()
        op = registry().get(body["operation"])
        if op is None:
            raise ApiError(
                422, "unknown_operation",
                f"unknown operation {body['operation']!r}; known: {', '.join(registry())}",
                errors={"operation": ["unknown"]},
            )
        entry = pick_model(op, body["model"])
        params = load_params(op, body["params"])
        entry = fit_model(op, entry, body["model"] is not None, params)
        sizes = {name: tuple(size) for name, size in body["sizes"].items()}
        missing = [n for n in INPUT_NAMES if op.input_mode(n) == "required" and n not in sizes]
        if missing:
            raise ApiError(
                422, "sizes_missing",
                f"{op.id} needs the size of its {', '.join(missing)}: send sizes "
                f"{{\"{missing[0]}\": [width, height]}}",
                errors={"sizes": [f"{name} is required" for name in missing]},
            )
        if "image" not in sizes:
            sizes["image"] = (params.get("width") or 1024, params.get("height") or 1024)
        check_operation(op, params, sizes, entry)
        quote = pricing.quote(op, entry, params, sizes, services.billing.rates,
                              services.catalog)
        return {
            **quote.as_json(), "operation": op.id, "model": entry.id,
            "rule": pricing.describe(op, services.catalog, services.billing.rates)["rule"],
            "charged": services.config.hosted,
        }


@blp.route("/billing/items")
class Items(MethodView):
    @blp.response(200, ItemsSchema)
    def get(self):
        """Credit packs and plans on sale (hosted mode)"""
        billing = _services().billing
        return {
            "packs": [_item(i) for i in billing.packs.values()],
            "plans": [_item(i) for i in billing.plans.values()],
        }


def _item(item) -> dict:
    return {"id": item.id, "title": item.title or f"{item.credits} credits",
            "credits": item.credits}


@blp.route("/billing/checkout")
class Checkout(MethodView):
    @blp.arguments(CheckoutRequestSchema)
    @blp.response(200, CheckoutSchema)
    @blp.alt_response(404, description="Not a hosted server, or no account")
    @blp.alt_response(422, description="Unknown pack or plan")
    @blp.alt_response(502, description="Stripe refused (`payment_provider_error`)")
    @blp.alt_response(503, description="Billing not configured")
    def post(self, body):
        """A Stripe Checkout Session to buy a credit pack or subscribe to a plan: its URL"""
        services = _services()
        if not services.config.hosted:
            raise ApiError(404, "billing_not_available",
                           "credits are sold only by hosted servers (AIEDIT_MODE=hosted)")
        kind = "pack" if body["pack"] is not None else "plan"
        item_id = body[kind]
        item = services.billing.item(kind, item_id)
        if item is None:
            known = ", ".join(getattr(services.billing, f"{kind}s")) or "none"
            raise ApiError(422, f"unknown_{kind}", f"no {kind} {item_id!r} (on sale: {known})",
                           errors={kind: ["unknown"]})
        account, _ = caller_account()
        return_url = services.config.billing_return_url or request.url_root + "account"
        try:
            return create_checkout(services, account, item, return_url)
        except BillingError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None


@blp.route("/billing/webhook")
class Webhook(MethodView):
    @blp.doc(
        security=[],
        requestBody={"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": "A Stripe event, as Stripe signs and sends it"}}}},
        parameters=[{"in": "header", "name": "Stripe-Signature", "required": True,
                     "schema": {"type": "string"}}],
    )
    @blp.response(200, description="The event was applied, already applied, or not ours")
    @blp.alt_response(400, description="Bad or stale signature, or not an event")
    def post(self):
        """Stripe's webhook (needs no key: the signature is checked)"""
        services = _services()
        if not services.config.hosted:
            raise ApiError(404, "billing_not_available", "this server does not sell credits")
        try:
            return handle_webhook(services, request.get_data(cache=False),
                                  request.headers.get("Stripe-Signature"))
        except BillingError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None

