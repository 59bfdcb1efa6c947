"""The account pages in headless Chromium (Debian's `chromium`, driven by Playwright), against a
real hosted `aiedit serve` (gunicorn API processes on PostgreSQL and Redis): a person signs up,
buys a pack through the local Stripe, sees the balance change once the webhook arrives, makes a
key and uses it, exports their data and deletes the account."""

from __future__ import annotations

import re

import pytest
import requests

from tests.fixtures.studio import Studio
from tests.web.conftest import TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.studio, pytest.mark.browser]
PASSWORD = "a long enough password"


@pytest.fixture
def hosted(tmp_path, postgres, redis_server):
    studio = Studio(tmp_path / "hosted", postgres, redis_server,
                    extra_env={"AIEDIT_MODE": "hosted"})
    studio.start_api(workers=2)
    yield studio
    studio.close()


def test_sign_up_make_a_key_and_use_it(hosted, page):
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
    expect(page.locator("h2")).to_have_text("Hello, Grace Hopper")

    page.get_by_role("link", name="API keys").click()
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
