"""Hosted mode in real processes: gunicorn API processes and a worker on PostgreSQL and Redis,
set up with the CLI (`aiedit credits grant`, `aiedit users suspend`), paid through the local
Stripe, which delivers its own signed webhooks."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.studio.conftest import post_job, wait_state

WEBHOOK_SECRET = "whsec_studio_e2e"


@pytest.fixture
def hosted_studio(studio_factory, local_stripe, tmp_path):
    billing = tmp_path / "billing.toml"
    billing.write_text(f'[packs.starter]\nprice = "{local_stripe.price(999)}"\ncredits = 500\n')
    studio = studio_factory(
        "hosted", AIEDIT_MODE="hosted", AIEDIT_BILLING_FILE=str(billing),
        AIEDIT_STRIPE_SECRET_KEY=local_stripe.secret_key,
        AIEDIT_STRIPE_API_BASE=local_stripe.url,
        AIEDIT_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        AIEDIT_BILLING_RETURN_URL="http://127.0.0.1/account",
    )
    studio.stripe = local_stripe
    return studio


def account(studio, headers) -> requests.Response:
    return requests.get(studio.url + "/v1/account", headers=headers, timeout=30)


def wait_balance(studio, headers, balance: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        body = account(studio, headers).json()
        if body["balance"] == balance:
            return body
        time.sleep(0.2)
    raise AssertionError(f"balance not {balance} after {timeout} s: {body}\n{studio.logs()}")


def test_fifty_concurrent_submissions_with_credit_for_one_on_postgresql(hosted_studio):
    studio = hosted_studio
    headers = studio.user("ann")
    granted = studio.cli("credits", "grant", "ann", "1", "--reason", "trial credit")
    assert "balance 1" in granted.stdout
    url = studio.start_api(workers=3)
    barrier = threading.Barrier(50)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def submit():
        barrier.wait()
        resp = post_job(url, headers, scale=2)
        with lock:
            results.append(resp)

    threads = [threading.Thread(target=submit) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [202] + [402] * 49, [r.text for r in results if r.status_code not in
                                         (202, 402)]
    refused = next(r.json() for r in results if r.status_code == 402)
    assert refused["code"] == "insufficient_credits"
    assert "costs 1 credits and your balance is 0 (1 more are held" in refused["message"]
    assert account(studio, headers).json()["balance"] == 0

    # suspension (no worker runs: the accepted job is still queued) cancels it, credit back
    job_id = next(r.json()["id"] for r in results if r.status_code == 202)
    out = studio.cli("users", "suspend", "ann", "--reason", "card testing").stdout
    assert "1 unfinished job(s) canceled" in out
    refused = account(studio, headers)
    assert refused.status_code == 403 and refused.json()["code"] == "account_suspended"
    assert post_job(url, headers, scale=2).status_code == 403
    studio.cli("users", "unsuspend", "ann")
    assert account(studio, headers).json()["balance"] == 1
    assert wait_state(url, headers, job_id, timeout=10)["state"] == "canceled"


def test_buy_a_pack_run_a_job_and_get_refunded_through_the_local_stripe(hosted_studio):
    studio = hosted_studio
    headers = studio.user("bea")
    url = studio.start_api(workers=2)
    studio.stripe.send_webhooks_to(
        url + "/v1/billing/webhook", WEBHOOK_SECRET,
        events=["checkout.session.completed", "charge.refunded", "customer.created"],
    )
    resp = requests.post(url + "/v1/billing/checkout", json={"pack": "starter"}, headers=headers,
                         timeout=30)
    assert resp.status_code == 200, resp.text
    paid = studio.stripe.pay(resp.json()["url"])
    assert paid.status_code == 303
    wait_balance(studio, headers, 500)  # delivered and signed by the local Stripe

    studio.start_worker("w1")
    job = post_job(url, headers, scale=2)
    assert job.status_code == 202, job.text
    assert wait_state(url, headers, job.json()["id"])["state"] == "succeeded"
    body = wait_balance(studio, headers, 499)
    assert body["held"] == 0
    history = requests.get(url + "/v1/account/ledger", headers=headers, timeout=30).json()
    assert [(r["kind"], r["amount"]) for r in history] == [
        ("charge", 0), ("hold", -1), ("purchase", 500)
    ]

    session = studio.stripe.api("GET", f"/v1/checkout/sessions/{resp.json()['id']}")
    studio.stripe.refund(session["payment_intent"])
    wait_balance(studio, headers, 0)  # 500 taken back, floored at 0 (1 was spent)
    log = studio.api.log()
    assert "account flagged" in log or "floor 0" in log
