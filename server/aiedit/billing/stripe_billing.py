"""Stripe (hosted mode): Checkout Sessions that sell the credit packs and the monthly plan of the
billing settings, and the webhook that turns what Stripe reports into ledger rows.

- `create_checkout(services, account, item)`: a Checkout Session for a pack (mode `payment`)
  or a plan (mode `subscription`), for the account's Stripe customer (made on first use, with
  only the account id in its metadata). The session carries the account id in
  `client_reference_id` and the credits in `metadata.credits`.
- `handle_webhook(services, payload, signature)`: verifies the `Stripe-Signature` header with
  the official library (`Webhook.construct_event`, 5 minutes' tolerance), then applies the
  event once: its id is stored in the transaction that changes the ledger, so a replayed event
  adds nothing. `checkout.session.completed` (and `.async_payment_succeeded`) credits a bought
  pack, or records the plan; `invoice.paid` grants a plan's credits for the period (once per
  invoice); `charge.refunded` takes back the refunded share of the credits, never below a
  balance of zero, and flags the account when part of them were already spent;
  `customer.subscription.deleted` ends the plan. Other events are acknowledged and ignored."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aiedit.billing import ledger
from aiedit.billing.settings import Item
from aiedit.store.db import utcnow
from aiedit.store.models import Account, LedgerEntry, StripeEvent

if TYPE_CHECKING:
    from aiedit.services import Services

log = logging.getLogger(__name__)
SIGNATURE_TOLERANCE_S = 300  # Stripe's default: older signed timestamps are refused


class BillingError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def stripe_client(config):
    """The official client, pointed at `stripe_api_base` when one is set (tests: localstripe)."""
    import stripe

    if not config.stripe_secret_key:
        raise BillingError(
            503, "billing_not_configured",
            "this server sells no credits yet: its operator has not set AIEDIT_STRIPE_SECRET_KEY",
        )
    base = {"api": config.stripe_api_base.rstrip("/")} if config.stripe_api_base else None
    return stripe.StripeClient(config.stripe_secret_key, base_addresses=base,
                               max_network_retries=1)


# --- checkout ---------------------------------------------------------------------------------


def create_checkout(services: Services, account: Account, item: Item,
                    return_url: str | None = None, *, success_url: str | None = None,
                    cancel_url: str | None = None) -> dict:
    """A Checkout Session for `item` (a pack or a plan) paid by `account`: {"id", "url"}.
    People come back to `return_url` (default: the `billing_return_url` setting) with
    `?checkout=success` or `?checkout=canceled`, or to `success_url` / `cancel_url` when given
    (the account pages use their own)."""
    import stripe

    config = services.config
    return_url = return_url or config.billing_return_url
    if not return_url and not (success_url and cancel_url):
        raise BillingError(503, "billing_not_configured",
                           "the server has no billing_return_url to send buyers back to")
    client = stripe_client(config)
    separator = "&" if "?" in (return_url or "") else "?"
    metadata = {"account_id": account.id, "credits": str(item.credits), "item": item.id,
                "kind": item.kind}
    params = {
        "mode": "payment" if item.kind == "pack" else "subscription",
        "line_items": [{"price": item.price, "quantity": 1}],
        "client_reference_id": account.id,
        "metadata": metadata,
        "success_url": success_url or f"{return_url}{separator}checkout=success",
        "cancel_url": cancel_url or f"{return_url}{separator}checkout=canceled",
    }
    if item.kind == "plan":
        params["subscription_data"] = {"metadata": metadata}
    else:
        params["payment_intent_data"] = {"metadata": metadata}
    try:
        params["customer"] = _customer(services, client, account)
        session = client.v1.checkout.sessions.create(params=params)
    except stripe.StripeError as exc:
        log.warning("Stripe refused a checkout session: %s", exc)
        raise BillingError(
            502, "payment_provider_error",
            "the payment provider did not open a checkout: "
            f"{getattr(exc, 'user_message', None) or 'it answered with an error'}; try again later",
        ) from None
    return {"id": session.id, "url": session.url}


def _customer(services: Services, client, account: Account) -> str:
    """The account's Stripe customer, made on first checkout (metadata: the account id only),
    so invoices of its subscription find the account whatever order events arrive in."""
    if account.stripe_customer:
        return account.stripe_customer
    customer = client.v1.customers.create(params={"metadata": {"account_id": account.id}})
    with services.db.session() as s:
        s.execute(
            update(Account)
            .where(Account.id == account.id, Account.stripe_customer.is_(None))
            .values(stripe_customer=customer.id)
        )
        stored = s.scalar(select(Account.stripe_customer).where(Account.id == account.id))
    account.stripe_customer = stored
    return stored


# --- webhook ----------------------------------------------------------------------------------


def handle_webhook(services: Services, payload: bytes, signature: str | None) -> dict:
    """Verify and apply one webhook delivery. Returns {"event", "type", "result"}; raises
    BillingError (400) for a bad or stale signature or a payload that is not an event."""
    import stripe

    secret = services.config.stripe_webhook_secret
    if not secret:
        raise BillingError(503, "billing_not_configured",
                           "this server has no AIEDIT_STRIPE_WEBHOOK_SECRET to verify events")
    if not signature:
        raise BillingError(400, "invalid_signature", "the Stripe-Signature header is missing")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret,
                                               tolerance=SIGNATURE_TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        stale = "tolerance" in str(exc)
        raise BillingError(
            400, "invalid_signature",
            "the Stripe-Signature timestamp is older than 5 minutes (a replayed delivery?)"
            if stale else "the Stripe-Signature does not match this server's webhook secret",
        ) from None
    except ValueError:
        raise BillingError(400, "invalid_payload",
                           "the body is not a Stripe event (JSON)") from None
    body = json.loads(payload)
    event_id, event_type = body.get("id"), body.get("type")
    data = (body.get("data") or {}).get("object")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(
        data, dict
    ):
        raise BillingError(400, "invalid_payload", "the event lacks an id, a type or an object")
    del event
    handler = _HANDLERS.get(event_type)
    if handler is None:
        return {"event": event_id, "type": event_type, "result": "ignored"}
    result = handler(services, event_id, event_type, data)
    log.info("stripe event applied", extra={"event": event_id, "type": event_type,
                                            "result": result})
    return {"event": event_id, "type": event_type, "result": result}


def _once(services: Services, event_id: str, event_type: str, account_id: str | None,
          change: Callable[[Session], str]) -> str:
    """Apply `change` in the transaction that records the event id: a replay (sequential or
    concurrent) finds the id and changes nothing. Serialized on the account, so a change that
    takes credits sees a balance no one else is changing."""
    db = services.db
    try:
        with db.session() as s:
            db.serialize(s, ledger.lock_name(account_id) if account_id else "stripe-events")
            if s.get(StripeEvent, event_id) is not None:
                return "duplicate"
            s.add(StripeEvent(id=event_id, type=event_type, received_at=utcnow()))
            s.flush()
            return change(s)
    except IntegrityError:  # the same event, delivered twice at once, committed first
        return "duplicate"


def _checkout_completed(services, event_id, event_type, data) -> str:
    if data.get("payment_status") not in ("paid", "no_payment_required"):
        return "not paid yet"  # an async payment: .async_payment_succeeded follows
    account_id = data.get("client_reference_id")
    metadata = data.get("metadata") or {}
    account = _account(services, account_id)
    if account is None:
        return _unmatched(services, event_id, event_type, f"no account {account_id!r}")
    if data.get("mode") == "subscription":
        def record_plan(s: Session) -> str:
            s.execute(update(Account).where(Account.id == account.id).values(
                plan=metadata.get("item") or "plan",
                stripe_subscription=data.get("subscription"),
            ))
            if data.get("customer"):
                s.execute(update(Account).where(
                    Account.id == account.id, Account.stripe_customer.is_(None)
                ).values(stripe_customer=data["customer"]))
            return "plan recorded"

        return _once(services, event_id, event_type, account.id, record_plan)
    credits = _positive_int(metadata.get("credits"))
    if credits is None:
        return _unmatched(services, event_id, event_type,
                          f"metadata.credits is {metadata.get('credits')!r}")
    title = _item_title(services, metadata.get("item"), credits)

    ref = data.get("payment_intent") or data.get("id")

    def add(s: Session) -> str:
        if s.scalar(select(LedgerEntry.id).where(
            LedgerEntry.ref == ref, LedgerEntry.kind == ledger.PURCHASE
        )):  # .completed and .async_payment_succeeded both name a paid session
            return "session already credited"
        ledger.credit(
            s, account.id, credits, ledger.PURCHASE, reason=f"bought {title}", ref=ref,
            meta={"session": data.get("id"), "amount": data.get("amount_total"),
                  "currency": data.get("currency"), "item": metadata.get("item")},
        )
        return f"credited {credits}"

    return _once(services, event_id, event_type, account.id, add)


def _invoice_paid(services, event_id, event_type, data) -> str:
    plan, credits = _plan_of_invoice(services, data)
    if plan is None:
        return "no plan of this server in the invoice"
    account = _account_of_invoice(services, data)
    if account is None:
        return _unmatched(services, event_id, event_type,
                          f"no account for customer {data.get('customer')!r}")
    invoice_id = data.get("id")

    def add(s: Session) -> str:
        if s.scalar(select(LedgerEntry.id).where(
            LedgerEntry.ref == invoice_id, LedgerEntry.kind == ledger.SUBSCRIPTION
        )):
            return "invoice already credited"
        ledger.credit(
            s, account.id, credits, ledger.SUBSCRIPTION,
            reason=f"{plan.title or plan.id}: credits for the period", ref=invoice_id,
            meta={"amount": data.get("amount_paid"), "currency": data.get("currency"),
                  "item": plan.id, "payment_intent": data.get("payment_intent"),
                  "charge": data.get("charge")},
        )
        s.execute(update(Account).where(Account.id == account.id).values(
            plan=plan.id, stripe_subscription=data.get("subscription")
            or account.stripe_subscription,
        ))
        return f"credited {credits}"

    return _once(services, event_id, event_type, account.id, add)


def _charge_refunded(services, event_id, event_type, data) -> str:
    refs = [r for r in (data.get("payment_intent"), data.get("invoice"), data.get("id")) if r]
    with services.db.session() as s:
        bought = s.scalar(
            select(LedgerEntry).where(
                LedgerEntry.ref.in_(refs),
                LedgerEntry.kind.in_((ledger.PURCHASE, ledger.SUBSCRIPTION)),
            ).order_by(LedgerEntry.id)
        ) if refs else None
    if bought is None or bought.account_id is None:
        return _unmatched(services, event_id, event_type,
                          f"no purchase for charge {data.get('id')!r}")
    paid = (bought.meta or {}).get("amount") or data.get("amount") or 0
    refunded = int(data.get("amount_refunded") or 0)
    if paid <= 0 or refunded <= 0:
        return "nothing refunded"
    target = min(bought.amount, math.floor(bought.amount * refunded / paid + 0.5))
    account_id = bought.account_id

    def take_back(s: Session) -> str:
        earlier = s.scalars(select(LedgerEntry).where(
            LedgerEntry.ref == bought.ref, LedgerEntry.kind == ledger.REFUND,
            LedgerEntry.account_id == account_id,
        ))
        done = sum(int((row.meta or {}).get("requested", -row.amount)) for row in earlier)
        todo = target - done
        if todo <= 0:
            return "refund already applied"
        available = max(0, ledger.balance(s, account_id))
        taken = min(todo, available)
        s.add(LedgerEntry(
            account_id=account_id, amount=-taken, kind=ledger.REFUND, ref=bought.ref,
            reason=f"payment refunded ({refunded / 100:.2f} {data.get('currency') or ''})".strip(),
            meta={"requested": todo, "charge": data.get("id"), "amount_refunded": refunded},
            created_at=utcnow(),
        ))
        if taken < todo:
            ledger.flag(s, account_id,
                        f"a refund took back {todo} credits but the balance was {available}: "
                        f"{todo - taken} of them had already been spent (charge "
                        f"{data.get('id')})")
            return f"took back {taken} of {todo} (floor 0); account flagged"
        return f"took back {taken}"

    return _once(services, event_id, event_type, account_id, take_back)


def _subscription_deleted(services, event_id, event_type, data) -> str:
    with services.db.session() as s:
        account_id = s.scalar(select(Account.id).where(
            Account.stripe_subscription == data.get("id")
        )) if data.get("id") else None
    if account_id is None:
        return _unmatched(services, event_id, event_type, "no account has this subscription")

    def end(s: Session) -> str:
        s.execute(update(Account).where(Account.id == account_id).values(
            plan=None, stripe_subscription=None))
        return "plan ended"

    return _once(services, event_id, event_type, account_id, end)


_HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "invoice.paid": _invoice_paid,
    "charge.refunded": _charge_refunded,
    "customer.subscription.deleted": _subscription_deleted,
}


# --- helpers ----------------------------------------------------------------------------------


def _unmatched(services, event_id, event_type, why: str) -> str:
    """An event of ours that names nothing we know: acknowledged (Stripe would retry it for
    days otherwise), logged for the operator, recorded so a replay is not logged again."""
    log.warning("stripe event %s (%s) not applied: %s", event_id, event_type, why)
    _once(services, event_id, event_type, None, lambda s: "")
    return f"not applied: {why}"


def _account(services, account_id) -> Account | None:
    if not isinstance(account_id, str) or not account_id:
        return None
    with services.db.session() as s:
        return ledger.get_account(s, account_id)


def _account_of_invoice(services, data: dict) -> Account | None:
    customer = data.get("customer")
    with services.db.session() as s:
        if isinstance(customer, str) and customer:
            account = s.scalar(select(Account).where(Account.stripe_customer == customer))
            if account is not None:
                return account
    details = data.get("subscription_details") or (
        (data.get("parent") or {}).get("subscription_details") or {}
    )
    return _account(services, (details.get("metadata") or {}).get("account_id"))


def _plan_of_invoice(services, data: dict) -> tuple[Item | None, int]:
    """The plan of this server an invoice pays for (by the price id of its lines)."""
    billing = services.billing
    for line in ((data.get("lines") or {}).get("data") or []):
        for price_id in _line_price_ids(line):
            item = billing.by_price(price_id)
            if item is not None and item.kind == "plan":
                return item, item.credits * max(1, int(line.get("quantity") or 1))
    return None, 0


def _line_price_ids(line: dict) -> list[str]:
    ids = []
    for key in ("price", "plan"):
        value = line.get(key)
        ids.append(value.get("id") if isinstance(value, dict) else value)
    details = (line.get("pricing") or {}).get("price_details") or {}
    ids.append(details.get("price"))
    return [i for i in ids if isinstance(i, str)]


def _item_title(services, item_id, credits: int) -> str:
    item = services.billing.packs.get(item_id) if item_id else None
    return item.title if item is not None and item.title else f"{credits} credits"


def _positive_int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
