"""Stripe: checkout sessions against the local Stripe (localstripe plus Checkout Sessions),
and the webhook: signatures checked as Stripe makes them, each event applied once, refunds
floored at zero. Objects in the events are the ones the local Stripe made; the events are
signed here with Stripe's scheme (tests/studio/test_hosted_billing.py has the local Stripe
deliver them itself)."""

from __future__ import annotations

import time

import pytest

from aiedit.billing import ledger
from tests.fixtures.local_stripe import event, sign

WEBHOOK_SECRET = "whsec_test_aiedit"


@pytest.fixture
def shop(hosted_factory, local_stripe, tmp_path):
    pack_price = local_stripe.price(999)
    plan_price = local_stripe.price(1900, recurring=True)
    billing = tmp_path / "billing.toml"
    billing.write_text(
        f'[packs.starter]\nprice = "{pack_price}"\ncredits = 500\ntitle = "500 credits"\n'
        f'[plans.monthly]\nprice = "{plan_price}"\ncredits = 2000\ntitle = "Monthly"\n'
    )
    hosted = hosted_factory(
        start=False, billing_file=str(billing), stripe_secret_key=local_stripe.secret_key,
        stripe_api_base=local_stripe.url, stripe_webhook_secret=WEBHOOK_SECRET,
        billing_return_url="https://aiedit.example/account",
    )
    hosted.stripe = local_stripe
    return hosted


def deliver(hosted, event_type: str, obj: dict, event_id: str | None = None,
            secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    payload = event(event_type, obj, event_id)
    return hosted.client.post(
        "/v1/billing/webhook", data=payload, content_type="application/json",
        headers={"Stripe-Signature": sign(payload, secret, timestamp)},
    )


def buy(hosted, headers, **item) -> dict:
    resp = hosted.client.post("/v1/billing/checkout", json=item or {"pack": "starter"},
                              headers=headers)
    assert resp.status_code == 200, resp.get_json()
    url = resp.get_json()["url"]
    paid = hosted.stripe.pay(url)
    assert paid.status_code == 303, paid.text
    assert paid.headers["Location"] == "https://aiedit.example/account?checkout=success"
    return hosted.stripe.api("GET", f"/v1/checkout/sessions/{resp.get_json()['id']}")


def test_checkout_session_carries_the_account_id_and_the_credits(shop):
    headers = shop.user("ann")
    resp = shop.client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["url"].startswith(shop.stripe.url + "/_config/checkout/cs_test_")
    session = shop.stripe.api("GET", f"/v1/checkout/sessions/{body['id']}")
    account = shop.client.get("/v1/account", headers=headers).get_json()
    assert session["client_reference_id"] == account["id"]
    assert session["metadata"]["credits"] == "500" and session["mode"] == "payment"
    assert session["amount_total"] == 999
    with shop.db.session() as s:
        customer = ledger.get_account(s, account["id"]).stripe_customer
    assert session["customer"] == customer
    stored = shop.stripe.api("GET", f"/v1/customers/{customer}")
    assert stored["metadata"] == {"account_id": account["id"]}  # nothing else about the person


def test_checkout_refuses_unknown_items_and_an_unconfigured_server(shop, hosted_factory):
    headers = shop.user("bob")
    resp = shop.client.post("/v1/billing/checkout", json={"pack": "huge"}, headers=headers)
    assert resp.status_code == 422 and resp.get_json()["code"] == "unknown_pack"
    assert "starter" in resp.get_json()["message"]
    resp = shop.client.post("/v1/billing/checkout", json={"pack": "starter", "plan": "monthly"},
                            headers=headers)
    assert resp.status_code == 422
    bare = hosted_factory(start=False)
    resp = bare.client.post("/v1/billing/checkout", json={"pack": "x"}, headers=bare.user("b"))
    assert resp.status_code == 422  # no packs on sale there at all
    items = shop.client.get("/v1/billing/items", headers=headers).get_json()
    assert items == {"packs": [{"id": "starter", "title": "500 credits", "credits": 500}],
                     "plans": [{"id": "monthly", "title": "Monthly", "credits": 2000}]}


def test_a_paid_session_credits_the_account_once_and_a_replay_adds_nothing(shop):
    headers = shop.user("cat")
    session = buy(shop, headers)
    assert session["payment_status"] == "paid"
    first = deliver(shop, "checkout.session.completed", session, event_id="evt_paid_1")
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["result"] == "credited 500"
    assert shop.balance("cat") == 500
    again = deliver(shop, "checkout.session.completed", session, event_id="evt_paid_1")
    assert again.status_code == 200 and again.get_json()["result"] == "duplicate"
    assert shop.balance("cat") == 500
    other = deliver(shop, "checkout.session.async_payment_succeeded", session)
    assert other.get_json()["result"] == "session already credited"
    assert shop.balance("cat") == 500
    rows = shop.rows("cat")
    assert [(r.kind, r.amount, r.reason) for r in rows] == [("purchase", 500, "bought 500 credits")]
    assert rows[0].ref == session["payment_intent"]


def test_bad_missing_and_stale_signatures_are_refused_with_400(shop):
    headers = shop.user("dan")
    session = buy(shop, headers)
    wrong = deliver(shop, "checkout.session.completed", session, secret="whsec_other")
    assert wrong.status_code == 400 and wrong.get_json()["code"] == "invalid_signature"
    assert "does not match" in wrong.get_json()["message"]
    stale = deliver(shop, "checkout.session.completed", session,
                    timestamp=int(time.time()) - 600)
    assert stale.status_code == 400 and "older than 5 minutes" in stale.get_json()["message"]
    payload = event("checkout.session.completed", session)
    missing = shop.client.post("/v1/billing/webhook", data=payload,
                               content_type="application/json")
    assert missing.status_code == 400 and missing.get_json()["code"] == "invalid_signature"
    tampered = payload.replace(b'"500"', b'"50000"')
    resp = shop.client.post("/v1/billing/webhook", data=tampered, content_type="application/json",
                            headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET)})
    assert resp.status_code == 400
    assert shop.balance("dan") == 0


def test_a_refund_takes_back_credits_down_to_zero_and_flags_the_account(shop):
    headers = shop.user("eli")
    session = buy(shop, headers)
    deliver(shop, "checkout.session.completed", session)
    account_id = shop.account_id("eli")
    ledger.grant(shop.db, account_id, -400, "spent on jobs (stand-in)")
    shop.stripe.refund(session["payment_intent"], amount=500)  # about half of 999 cents
    intent = shop.stripe.api("GET", f"/v1/payment_intents/{session['payment_intent']}")
    charge = shop.stripe.api("GET", f"/v1/charges/{intent['latest_charge']['id']}"
                             if isinstance(intent["latest_charge"], dict)
                             else f"/v1/charges/{intent['latest_charge']}")
    assert charge["amount_refunded"] == 500
    half = deliver(shop, "charge.refunded", charge)
    assert half.get_json()["result"] == "took back 100 of 250 (floor 0); account flagged"
    assert shop.balance("eli") == 0
    with shop.db.session() as s:
        account = ledger.get_account(s, account_id)
        assert account.flagged_at is not None and "150 of them" in account.flag_reason
    shop.stripe.refund(session["payment_intent"])  # the rest
    charge = shop.stripe.api("GET", f"/v1/charges/{charge['id']}")
    ledger.grant(shop.db, account_id, 1000, "goodwill")
    rest = deliver(shop, "charge.refunded", charge)
    assert rest.get_json()["result"] == "took back 250"  # 500 in all, never twice
    assert shop.balance("eli") == 750
    assert deliver(shop, "charge.refunded", charge).get_json()["result"] == (
        "refund already applied"
    )


def test_a_plan_records_the_subscription_and_each_paid_invoice_grants_its_credits(shop):
    headers = shop.user("fox")
    session = buy(shop, headers, plan="monthly")
    assert session["mode"] == "subscription" and session["subscription"]
    assert deliver(shop, "checkout.session.completed", session).get_json()["result"] == (
        "plan recorded"
    )
    invoices = shop.stripe.api("GET", "/v1/invoices", customer=session["customer"])["data"]
    assert len(invoices) == 1 and invoices[0]["status"] == "paid"
    assert deliver(shop, "invoice.paid", invoices[0]).get_json()["result"] == "credited 2000"
    # Stripe also sends invoice.payment_succeeded, and may send invoice.paid again under a new
    # event id: the invoice is credited once
    assert deliver(shop, "invoice.paid", invoices[0]).get_json()["result"] == (
        "invoice already credited"
    )
    account = shop.client.get("/v1/account", headers=headers).get_json()
    assert account["balance"] == 2000 and account["plan"] == "monthly"
    ended = deliver(shop, "customer.subscription.deleted",
                    {"id": session["subscription"], "object": "subscription"})
    assert ended.get_json()["result"] == "plan ended"
    assert shop.client.get("/v1/account", headers=headers).get_json()["plan"] is None


def test_events_for_unknown_accounts_and_other_types_are_acknowledged(shop):
    resp = deliver(shop, "checkout.session.completed",
                   {"id": "cs_x", "mode": "payment", "payment_status": "paid",
                    "client_reference_id": "0" * 32, "metadata": {"credits": "10"}})
    assert resp.status_code == 200 and resp.get_json()["result"].startswith("not applied")
    resp = deliver(shop, "customer.created", {"id": "cus_x", "object": "customer"})
    assert resp.status_code == 200 and resp.get_json()["result"] == "ignored"


def test_quotes_price_a_job_as_it_is_charged_and_operations_show_the_rule(shop):
    headers = shop.user("gil", credits=50)
    quote = shop.client.post("/v1/quotes", headers=headers, json={
        "operation": "upscale", "model": "classic-lanczos", "params": {"scale": 4},
        "sizes": {"image": [1200, 1000]},
    })
    assert quote.status_code == 200, quote.get_json()
    body = quote.get_json()
    # 4800 x 4000 out = 19.2 MP: 5 started 4-MP blocks x rate 1 (classic)
    assert body["credits"] == 5 and body["units"] == 5 and body["rate"] == 1.0
    assert body["charged"] is True
    ops = shop.client.get("/v1/operations", headers=headers).get_json()["operations"]
    generate = next(op for op in ops if op["id"] == "generate")
    assert "steps" in generate["pricing"]["rule"] and generate["pricing"]["reference_steps"] == 30
    bad = shop.client.post("/v1/quotes", headers=headers, json={
        "operation": "upscale", "params": {"scale": 4}})
    assert bad.status_code == 422 and bad.get_json()["code"] == "sizes_missing"
    bad = shop.client.post("/v1/quotes", headers=headers, json={
        "operation": "upscale", "sizes": {"image": [0, 5]}})
    assert bad.status_code == 422 and "sizes" in bad.get_json()["message"]


def test_create_checkout_takes_the_account_pages_own_return_addresses(shop):
    from aiedit.billing.stripe_billing import create_checkout

    shop.user("hana")
    account = ledger.ensure_account(shop.db, "hana")
    made = create_checkout(shop.services, account, shop.services.billing.packs["starter"],
                           success_url="https://aiedit.example/account/credits?paid=1",
                           cancel_url="https://aiedit.example/account/credits?canceled=1")
    session = shop.stripe.api("GET", f"/v1/checkout/sessions/{made['id']}")
    assert session["success_url"] == "https://aiedit.example/account/credits?paid=1"
    assert session["cancel_url"] == "https://aiedit.example/account/credits?canceled=1"
    assert session["client_reference_id"] == account.id


def test_a_refined_upscale_pays_the_diffusion_rate(shop):
    headers = shop.user("ida")
    request = {"operation": "upscale", "model": "classic-lanczos",
               "params": {"scale": 2, "refine_model": "sdxl-turbo", "refine_strength": 0.3},
               "sizes": {"image": [512, 512]}}
    quote = shop.client.post("/v1/quotes", headers=headers, json=request)
    assert quote.status_code == 200, quote.get_json()
    body = quote.get_json()
    assert body["rate"] == 4.0  # the diffusion pass's rate, not Lanczos' 1
    assert body["credits"] == body["units"] * 4 and body["units"] >= 2  # blocks + tiles
    request["params"]["refine_strength"] = 0.0  # no refine pass: Lanczos' rate
    assert shop.client.post("/v1/quotes", headers=headers, json=request).get_json()["rate"] == 1.0


def test_forgetting_an_account_leaves_only_anonymous_amounts(shop):
    from sqlalchemy import select

    from aiedit.store.models import Account, LedgerEntry

    headers = shop.user("jan")
    session = buy(shop, headers)
    deliver(shop, "checkout.session.completed", session)
    job_id = shop.submit(headers, scale=2).get_json()["id"]
    shop.client.delete(f"/v1/jobs/{job_id}", headers=headers)
    account_id = shop.account_id("jan")
    with shop.db.session() as s:
        customer = s.get(Account, account_id).stripe_customer
        assert ledger.forget_account(s, account_id) == 3
    with shop.db.session() as s:
        assert s.get(Account, account_id) is None
        rows = list(s.scalars(select(LedgerEntry)))
    text = repr([(r.account_id, r.job_id, r.ref, r.reason, r.meta) for r in rows])
    for secret in (account_id, job_id, customer, session["id"], session["payment_intent"]):
        assert secret not in text
    assert sorted((r.kind, r.amount) for r in rows) == [
        ("hold", -1), ("purchase", 500), ("release", 1)]
    assert next(r.meta for r in rows if r.kind == "purchase") == {"amount": 999,
                                                                  "currency": "usd"}
