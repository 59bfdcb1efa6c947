"""The account pages in headless Chromium (Debian's `chromium`, driven by Playwright), against a
real hosted `aiedit serve` (gunicorn API processes on PostgreSQL and Redis): a person signs up,
buys a pack through the local Stripe, sees the balance change once the webhook arrives, makes a
key and uses it, exports their data and deletes the account."""

from __future__ import annotations

import json
import re
import time
import zipfile

import pytest
import requests

from tests.fixtures.studio import Studio
from tests.web.conftest import TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.studio, pytest.mark.browser]
PASSWORD = "a long enough password"


WEBHOOK_SECRET = "whsec_account_pages"


@pytest.fixture
def hosted(tmp_path, postgres, redis_server, local_stripe):
    billing = tmp_path / "billing.toml"
    billing.write_text(f'[packs.starter]\nprice = "{local_stripe.price(999)}"\ncredits = 500\n'
                       'title = "Starter pack"\n')
    studio = Studio(tmp_path / "hosted", postgres, redis_server, extra_env={
        "AIEDIT_MODE": "hosted", "AIEDIT_BILLING_FILE": str(billing),
        "AIEDIT_STRIPE_SECRET_KEY": local_stripe.secret_key,
        "AIEDIT_STRIPE_API_BASE": local_stripe.url,
        "AIEDIT_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    })
    studio.start_api(workers=2)
    local_stripe.send_webhooks_to(studio.url + "/v1/billing/webhook", WEBHOOK_SECRET)
    yield studio
    studio.close()


def test_sign_up_buy_a_pack_make_a_key_export_and_delete_the_account(hosted, page):
    from playwright.sync_api import expect

    url = hosted.url
    page.goto(url + "/account/credits")  # what the plugins' "Buy credits" opens
    expect(page).to_have_url(re.compile(r"/account/signin\?next=/account/credits$"))
    page.get_by_role("link", name="Sign up").click()
    page.fill("#name", "Ada Lovelace")
    page.fill("#email", "ada@example.com")
    page.fill("#password", PASSWORD)
    page.check("#age")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/account/credits$"))  # back where the plugin pointed
    expect(page.locator("#balance")).to_have_text("0")
    with page.expect_navigation():
        page.locator("button[data-pack=starter]").click()  # on to the (local) Stripe page
    expect(page.locator("h1")).to_contain_text("Pay 9.99")
    with page.expect_navigation():
        page.locator("#pay").click()
    expect(page).to_have_url(re.compile(r"/account/credits\?checkout=success$"))
    expect(page.locator("#paid")).to_be_visible()
    deadline = time.monotonic() + 30  # the webhook arrives on its own
    while page.locator("#balance").inner_text() != "500" and time.monotonic() < deadline:
        time.sleep(0.3)
        page.goto(url + "/account/credits")
    expect(page.locator("#balance")).to_have_text("500")
    expect(page.locator("#credit-history")).to_contain_text("Bought")
    expect(page.locator("#credit-history")).to_contain_text("+500")

    page.get_by_role("link", name="API keys").click()
    page.fill("#key-name", "GIMP laptop")
    with page.expect_navigation():
        page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key-secret").inner_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    account = requests.get(url + "/v1/account", headers=headers, timeout=30).json()
    assert account["balance"] == 500

    page.get_by_role("link", name="Export").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    archive = zipfile.ZipFile(download.value.path())
    person = json.loads(archive.read("account.json"))["user"]
    assert (person["display_name"], person["email"]) == ("Ada Lovelace", "ada@example.com")
    ledger = json.loads(archive.read("ledger.json"))
    assert [(e["kind"], e["amount"]) for e in ledger] == [("purchase", 500)]
    assert {c["name"] for c in page.context.cookies()} == {"aiedit_session"}

    page.get_by_role("link", name="Delete account").click()
    page.fill("#password", "not my password")
    with page.expect_navigation():
        page.locator("#delete").click()
    expect(page.locator(".error")).to_contain_text("not your password")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.locator("#delete").click()
    expect(page.locator("h2")).to_have_text("Account deleted")
    assert requests.get(url + "/v1/account", headers=headers, timeout=30).status_code == 401
    assert page.context.cookies() == []
    page.goto(url + "/account")
    expect(page.locator("h2")).to_have_text("Sign in")


def test_get_a_key_support_sign_out_and_in(hosted, page):
    from playwright.sync_api import expect

    url = hosted.url
    page.goto(url + "/account/keys")  # what the plugins' "Get a key" opens
    expect(page).to_have_url(re.compile(r"/account/signin\?next=/account/keys$"))
    page.get_by_role("link", name="Sign up").click()
    page.fill("#name", "Grace Hopper")
    page.fill("#email", "grace@example.com")
    page.fill("#password", PASSWORD)
    page.check("#age")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/account/keys$"))  # back where the plugin pointed
    page.fill("#key-name", "Krita studio PC")
    with page.expect_navigation():
        page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key-secret").inner_text().strip()
    assert key.startswith("aiedit_")
    resp = requests.get(url + "/v1/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert resp.status_code == 200 and resp.json() == []
    page.goto(url + "/account/keys")
    expect(page.locator("#new-key")).to_have_count(0)  # shown once
    expect(page.locator("#keys")).to_contain_text("Krita studio PC")

    cookies = {c["name"]: c for c in page.context.cookies()}
    assert set(cookies) == {"aiedit_session"}, cookies  # the form's CSRF cookie went at sign-in
    session = cookies["aiedit_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert session["path"] == "/account" and not session["secure"]  # loopback, plain HTTP

    page.get_by_role("link", name="Support").click()
    page.fill("#message", "Where do I paste the key in Krita?")
    with page.expect_navigation():
        page.get_by_role("button", name="Send").click()
    expect(page.locator(".notice")).to_contain_text("your message was sent")

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/account/signin$"))
    page.goto(url + "/account")
    expect(page.locator("h2")).to_have_text("Sign in")
    page.fill("#email", "grace@example.com")
    page.fill("#password", "not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".error")).to_contain_text("do not match an account")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h2")).to_have_text("Hello, Grace Hopper", timeout=TIMEOUT_MS)
