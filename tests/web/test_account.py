"""Hosted account pages through the Flask test client, on PostgreSQL and Redis: sign-up and
sign-in, the session and CSRF cookies, CSRF and cross-site refusals, session fixation, keys,
usage, the person's data, analytics opt-out, support messages and the abuse limits. The browser
test is test_account_browser.py."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from PIL import Image
from sqlalchemy import select

from aiedit.app import services_of
from aiedit.auth.keys import create_key
from aiedit.auth.users import create_user
from aiedit.billing import ledger
from aiedit.billing.suspension import suspend
from aiedit.store.models import AccountSession, ApiKey, Job, LedgerEntry, SupportMessage, User
from tests.fixtures.hosted import (
    PASSWORD,
    HostedApps,
    form_token,
    page_token,
    set_cookies,
    sign_in,
    sign_up,
)
from tests.helpers import noise_image, png_bytes, submit

pytestmark = pytest.mark.studio


@pytest.fixture
def hosted(tmp_path, postgres, redis_server, models_dir):
    apps = HostedApps(tmp_path, postgres, redis_server, models_dir)
    yield apps
    apps.close()


@pytest.fixture
def app(hosted):
    return hosted()


def user_row(app, email="ada@example.com") -> User:
    with services_of(app).db.session() as s:
        return s.scalar(select(User).where(User.email == email))


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def upscale(client, key):
    resp = submit(client, "upscale", {"image": png_bytes(noise_image(16, 16))},
                  headers=bearer(key), model="classic-lanczos")
    assert resp.status_code == 202, resp.text
    return resp.get_json()["id"]


def new_key(client, name="Krita", credits: int = 0) -> str:
    """A key made on the keys page; `credits` granted to its account first (jobs cost)."""
    resp = client.post("/account/keys", data={"name": name,
                                              "csrf_token": page_token(client, "/account/keys")})
    assert resp.status_code == 201, resp.text
    key = re.search(r'id="new-key-secret">([^<]+)<', resp.text).group(1)
    if credits:
        db = services_of(client.application).db
        with db.session() as s:
            user = s.get(ApiKey, key.split("_")[1]).user
        ledger.grant(db, ledger.ensure_account(db, user).id, credits, "test")
    return key


# --- sign-up, sign-in, cookies ---------------------------------------------------------------


def test_sign_up_stores_an_argon2_hash_and_opens_a_session_with_the_right_cookie(app):
    client = app.test_client()
    form = client.get("/account/signup")
    assert "I am at least 13 years old" in form.text
    csrf = set_cookies(form)["aiedit_csrf"]
    assert "HttpOnly" in csrf and "SameSite=Strict" in csrf and "Path=/account" in csrf
    resp = sign_up(client, email="Ada@Example.com")
    assert resp.status_code == 303 and "/account" in resp.headers["Location"]
    cookies = set_cookies(resp)
    session = cookies["aiedit_session"]
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/account" in session
    assert "Secure" not in session  # loopback server over plain HTTP
    assert set(cookies) == {"aiedit_session", "aiedit_csrf"}  # the form's token is cleared
    user = user_row(app)
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert user.display_name == "Ada Lovelace" and user.age_confirmed_at is not None
    assert re.fullmatch(r"u[0-9a-f]{12}", user.name)
    home = client.get("/account")
    assert home.status_code == 200 and "Hello, Ada Lovelace" in home.text
    assert home.headers["Cache-Control"] == "no-store"
    assert "form-action 'self'" in home.headers["Content-Security-Policy"]


def test_cookies_are_secure_behind_tls_and_on_a_public_address(hosted):
    app = hosted(host="0.0.0.0")
    client = app.test_client()
    form = client.get("/account/signup", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert "Secure" in set_cookies(form)["aiedit_csrf"] and "plain HTTP" in form.text
    resp = sign_up(client, base_url="https://aiedit.example")
    assert "Secure" in set_cookies(resp)["aiedit_session"]
    loopback = hosted(same_as=app).test_client()
    behind_proxy = loopback.get("/account/signin", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in set_cookies(behind_proxy)["aiedit_csrf"]


def test_sign_up_needs_the_age_confirmation_and_a_valid_unused_email(hosted):
    app = hosted(min_age=16)
    client = app.test_client()
    assert "I am at least 16 years old" in client.get("/account/signup").text
    resp = sign_up(client, age=False)
    assert resp.status_code == 400 and "at least 16 years old" in resp.text
    assert "aiedit_session" not in set_cookies(resp)
    for email, name, password, needs in (
        ("not-an-email", "Ada", PASSWORD, "email address such as"),
        ("ada@example.com", "  ", PASSWORD, "enter your name"),
        ("ada@example.com", "Ada", "short", "at least 10 characters"),
    ):
        resp = sign_up(client, email=email, name=name, password=password)
        assert resp.status_code == 400 and needs in resp.text
    assert user_row(app) is None
    assert sign_up(client).status_code == 303
    other = app.test_client()
    resp = sign_up(other, email="ADA@example.com", name="Someone Else")
    assert resp.status_code == 400 and "an account with this email address exists" in resp.text


def test_sign_in_with_the_right_password_only(app):
    sign_up(app.test_client())
    client = app.test_client()
    for email, password in (("ada@example.com", "wrong password!"), ("bob@example.com", PASSWORD)):
        resp = sign_in(client, email, password)
        assert resp.status_code == 401 and "do not match an account" in resp.text
        assert "aiedit_session" not in set_cookies(resp)
    resp = sign_in(client, "ADA@example.com")
    assert resp.status_code == 303 and "aiedit_session" in set_cookies(resp)
    assert client.get("/account").status_code == 200


def test_pages_send_signed_out_visitors_to_sign_in_and_back_but_never_elsewhere(app):
    sign_up(app.test_client())
    client = app.test_client()
    resp = client.get("/account/keys")
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/account/signin?next=/account/keys")
    token = form_token(client.get("/account/signin?next=/account/keys"))
    resp = client.post("/account/signin", data={"email": "ada@example.com", "password": PASSWORD,
                                                "csrf_token": token, "next": "/account/keys"})
    assert resp.headers["Location"] == "/account/keys"
    newcomer = app.test_client()
    form = newcomer.get("/account/signup?next=/account/credits")
    assert 'name="next" value="/account/credits"' in form.text
    resp = newcomer.post("/account/signup", data={
        "email": "new@example.com", "name": "New", "password": PASSWORD, "age": "on",
        "next": "/account/credits", "csrf_token": form_token(form)})
    assert resp.headers["Location"] == "/account/credits"
    for target in ("https://evil.example/account", "//evil.example/account", "/admin",
                   "/\\evil.example"):
        other = app.test_client()
        token = form_token(other.get("/account/signin"))
        resp = other.post("/account/signin", data={"email": "ada@example.com",
                                                   "password": PASSWORD, "csrf_token": token,
                                                   "next": target})
        assert resp.headers["Location"] == "/account/", target


def test_sign_out_ends_the_session_on_the_server(app):
    client = app.test_client()
    sign_up(client)
    token = client.get_cookie("aiedit_session", path="/account").value
    assert client.post("/account/signout").status_code == 403  # no CSRF token
    resp = client.post("/account/signout", data={"csrf_token": page_token(client)})
    assert resp.status_code == 303 and "aiedit_session=;" in set_cookies(resp)["aiedit_session"]
    replay = app.test_client()
    replay.set_cookie("aiedit_session", token, path="/account")
    assert replay.get("/account").status_code == 303  # the old token opens nothing


def test_a_token_planted_before_sign_in_never_becomes_the_session(app):
    sign_up(app.test_client())
    victim = app.test_client()
    victim.set_cookie("aiedit_session", "planted-by-an-attacker", path="/account")
    resp = sign_in(victim)
    new = victim.get_cookie("aiedit_session", path="/account").value
    assert resp.status_code == 303 and new != "planted-by-an-attacker"
    attacker = app.test_client()
    attacker.set_cookie("aiedit_session", "planted-by-an-attacker", path="/account")
    assert attacker.get("/account").status_code == 303
    # Signing in from a browser that holds a live session replaces it: the earlier token ends.
    other = app.test_client()
    sign_in(other)
    earlier = other.get_cookie("aiedit_session", path="/account").value
    other.get("/account/signout")  # a GET signs nobody out
    token = form_token(app.test_client().get("/account/signin"))
    other.set_cookie("aiedit_csrf", token, path="/account")
    resp = other.post("/account/signin", data={"email": "ada@example.com",
                                               "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 303
    assert other.get_cookie("aiedit_session", path="/account").value != earlier
    stale = app.test_client()
    stale.set_cookie("aiedit_session", earlier, path="/account")
    assert stale.get("/account").status_code == 303
    with services_of(app).db.session() as s:
        # the sign-up's, the victim's and the new one; not the replaced one
        assert len(s.scalars(select(AccountSession)).all()) == 3


# --- CSRF and cross-site requests -------------------------------------------------------------


def test_sign_up_and_sign_in_forms_need_their_csrf_token(app):
    client = app.test_client()
    client.get("/account/signup")
    data = {"email": "ada@example.com", "name": "Ada", "password": PASSWORD, "age": "on"}
    for token in (None, "forged"):
        form = data | ({"csrf_token": token} if token else {})
        resp = client.post("/account/signup", data=form)
        assert resp.status_code == 403 and "security token is missing or wrong" in resp.text
    assert user_row(app) is None
    sign_up(app.test_client())
    resp = client.post("/account/signin", data={"email": "ada@example.com", "password": PASSWORD,
                                                "csrf_token": "forged"})
    assert resp.status_code == 403 and "aiedit_session" not in set_cookies(resp)


def test_every_signed_in_post_needs_the_sessions_csrf_token(app):
    client = app.test_client()
    sign_up(client)
    user = user_row(app)
    posts = [
        ("/account/keys", {"name": "sneaky"}),
        ("/account/settings", {"name": "Mallory", "email": "ada@example.com"}),
        ("/account/settings/analytics", {}),
        ("/account/support", {"message": "spam"}),
    ]
    for path, data in posts:
        for token in (None, "forged", form_token(app.test_client().get("/account/signin"))):
            form = data | ({"csrf_token": token} if token else {})
            resp = client.post(path, data=form)
            assert resp.status_code == 403, (path, token)
    with services_of(app).db.session() as s:
        assert s.scalars(select(ApiKey)).all() == []
        assert s.scalars(select(SupportMessage)).all() == []
        row = s.get(User, user.name)
        assert row.display_name == "Ada Lovelace" and not row.analytics_opt_out


def test_cross_site_posts_are_refused_before_anything_runs(app):
    client = app.test_client()
    sign_up(client)
    token = page_token(client, "/account/keys")
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = client.post("/account/keys", data={"name": "x", "csrf_token": token},
                           headers=headers)
        assert resp.status_code == 403 and resp.get_json()["code"] == "origin_not_allowed"
    same = client.post("/account/keys", data={"name": "x", "csrf_token": token},
                       headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 201


# --- keys, usage, data, analytics, support ----------------------------------------------------


def test_a_key_is_shown_once_works_and_can_be_revoked_by_its_owner_only(app):
    client = app.test_client()
    sign_up(client)
    key = new_key(client, "Krita laptop")
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    keys_page = client.get("/account/keys")
    key_id = key.split("_")[1]
    assert "Krita laptop" in keys_page.text and key_id in keys_page.text
    assert key.split("_", 2)[2] not in keys_page.text  # the secret is never shown again
    other = app.test_client()
    sign_up(other, email="bob@example.com", name="Bob")
    resp = other.post(f"/account/keys/{key_id}/revoke",
                      data={"csrf_token": page_token(other, "/account/keys")})
    assert resp.status_code == 404
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    resp = client.post(f"/account/keys/{key_id}/revoke",
                       data={"csrf_token": page_token(client, "/account/keys")})
    assert resp.status_code == 303
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 401
    assert "revoked" in client.get("/account/keys").text
    resp = client.post("/account/keys", data={"name": " ",
                                              "csrf_token": page_token(client, "/account/keys")})
    assert resp.status_code == 400 and "Give the key a name" in resp.text


def test_account_pages_show_the_balance_packs_credit_history_and_suspension(hosted, tmp_path):
    billing = tmp_path / "billing.toml"
    billing.write_text('[packs.starter]\nprice = "price_starter"\ncredits = 500\n'
                       'title = "Starter pack"\n')
    app = hosted(billing_file=str(billing))
    client = app.test_client()
    sign_up(client)
    assert 'id="balance">0<' in client.get("/account").text
    new_key(client, credits=42)
    assert 'id="balance">42<' in client.get("/account").text
    page = client.get("/account/credits")
    assert 'id="balance">42<' in page.text
    assert "500 credits" in page.text and "Starter pack" in page.text
    assert re.search(r"Granted <span class=\"muted\">test</span></td>\s*<td class=\"num\">\+42<",
                     page.text)
    suspend(services_of(app).runner, user_row(app).name, "card testing")
    assert "This account is suspended (card testing)" in client.get("/account/keys").text


def test_buy_opens_a_stripe_checkout_for_the_persons_account(hosted, tmp_path, local_stripe):
    price = local_stripe.price(900)
    billing = tmp_path / "billing.toml"
    billing.write_text(f'[packs.starter]\nprice = "{price}"\ncredits = 500\n')
    app = hosted(billing_file=str(billing), stripe_secret_key=local_stripe.secret_key,
                 stripe_api_base=local_stripe.url)
    client = app.test_client()
    sign_up(client)
    page = client.get("/account/credits")
    assert f"form-action 'self' {local_stripe.url}" in page.headers["Content-Security-Policy"]
    token = form_token(page)
    assert client.post("/account/credits/checkout", data={"pack": "starter"}).status_code == 403
    resp = client.post("/account/credits/checkout", data={"pack": "gold", "csrf_token": token})
    assert resp.status_code == 400 and "not on sale" in resp.text
    resp = client.post("/account/credits/checkout", data={"pack": "starter",
                                                          "csrf_token": token})
    assert resp.status_code == 303
    url = resp.headers["Location"]
    assert url.startswith(local_stripe.url + "/_config/checkout/cs_")
    session = local_stripe.api("GET", "/v1/checkout/sessions/" + url.rsplit("/", 1)[1])
    db = services_of(app).db
    account = ledger.ensure_account(db, user_row(app).name)
    assert session["client_reference_id"] == account.id
    assert session["metadata"]["credits"] == "500"
    assert session["success_url"] == "http://localhost/account/credits?checkout=success"
    paid = client.get("/account/credits?checkout=success")
    assert "Your credits are added as soon as Stripe confirms" in paid.text


def test_buying_without_stripe_configured_says_so(hosted, tmp_path):
    billing = tmp_path / "billing.toml"
    billing.write_text('[packs.starter]\nprice = "price_x"\ncredits = 500\n')
    app = hosted(billing_file=str(billing))
    client = app.test_client()
    sign_up(client)
    resp = client.post("/account/credits/checkout",
                       data={"pack": "starter", "csrf_token": page_token(client)})
    assert resp.status_code == 503 and "AIEDIT_STRIPE_SECRET_KEY" in resp.text


def test_usage_lists_the_persons_own_jobs(app):
    ada, bob = app.test_client(), app.test_client()
    sign_up(ada)
    sign_up(bob, email="bob@example.com", name="Bob")
    mine, theirs = upscale(ada, new_key(ada, credits=10)), upscale(bob, new_key(bob, credits=10))
    page = ada.get("/account/usage")
    assert mine in page.text and theirs not in page.text and "upscale" in page.text


def test_a_person_sees_and_corrects_their_name_and_email(app):
    client = app.test_client()
    sign_up(client)
    sign_up(app.test_client(), email="bob@example.com", name="Bob")
    page = client.get("/account/settings")
    assert 'value="Ada Lovelace"' in page.text and 'value="ada@example.com"' in page.text
    token = page_token(client)
    resp = client.post("/account/settings", data={"name": "Ada King", "email": "ada@example.com",
                                                  "csrf_token": token})
    assert resp.status_code == 200 and "Saved." in resp.text
    assert user_row(app).display_name == "Ada King"
    change = {"name": "Ada King", "email": "ada@king.example", "csrf_token": token}
    resp = client.post("/account/settings", data=change)
    assert resp.status_code == 400 and "current password" in resp.text
    resp = client.post("/account/settings", data=change | {"password": "not it at all"})
    assert resp.status_code == 400 and user_row(app, "ada@king.example") is None
    taken = client.post("/account/settings", data=change | {"email": "bob@example.com",
                                                            "password": PASSWORD})
    assert taken.status_code == 400 and "another account uses" in taken.text
    resp = client.post("/account/settings", data=change | {"password": PASSWORD})
    assert resp.status_code == 200 and user_row(app, "ada@king.example") is not None
    assert sign_in(app.test_client(), "ada@king.example").status_code == 303


def admin_client(app):
    db = services_of(app).db
    create_user(db, "ops", "admin")
    _, key = create_key(db, "ops", user="ops")
    client = app.test_client()
    token = form_token(client.get("/admin"))
    assert client.post("/admin/login", data={"key": key, "csrf_token": token}).status_code == 303
    return client


def feature_uses(admin, feature: str) -> int:
    found = re.search(rf'data-feature="{feature}"><td>{feature}</td><td class="num">(\d+)<',
                      admin.get("/admin").text)
    return int(found.group(1)) if found else 0


def test_admin_usage_figures_count_only_accounts_that_did_not_opt_out(app):
    admin = admin_client(app)
    ada, bob = app.test_client(), app.test_client()
    sign_up(ada)
    sign_up(bob, email="bob@example.com", name="Bob")
    ada_key, bob_key = new_key(ada, credits=10), new_key(bob, credits=10)
    upscale(ada, ada_key)
    assert feature_uses(admin, "upscale") == 1
    resp = bob.post("/account/settings/analytics", data={"csrf_token": page_token(bob)})
    assert resp.status_code == 303
    assert 'id="analytics">' in bob.get("/account/settings").text  # unticked now
    upscale(bob, bob_key)
    upscale(bob, bob_key)
    assert feature_uses(admin, "upscale") == 1, "an opted-out account's jobs were counted"
    bob.post("/account/settings/analytics", data={"csrf_token": page_token(bob),
                                                  "analytics": "on"})
    upscale(bob, bob_key)
    assert feature_uses(admin, "upscale") == 2


def test_a_failing_analytics_count_never_fails_the_accepted_job(app, caplog):
    client = app.test_client()
    sign_up(client)
    key = new_key(client, credits=10)
    with services_of(app).db.engine.begin() as connection:  # the count's table is unusable
        connection.exec_driver_sql("ALTER TABLE feature_counts RENAME TO feature_counts_away")
    try:
        job_id = upscale(client, key)
    finally:
        with services_of(app).db.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE feature_counts_away RENAME TO feature_counts")
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).status_code == 200
    assert "usage analytics: could not count a use of upscale" in caplog.text


def test_support_messages_are_stored_and_listed_for_admins(app):
    client = app.test_client()
    sign_up(client)
    job_id = upscale(client, new_key(client, credits=10))
    assert f'value="{job_id}"' in client.get(f"/account/support?job={job_id}").text
    token = page_token(client, "/account/support")
    empty = client.post("/account/support", data={"message": "  ", "csrf_token": token})
    assert empty.status_code == 400 and "write a message" in empty.text
    bad = client.post("/account/support", data={"message": "hi", "job_id": "../etc",
                                                "csrf_token": token})
    assert bad.status_code == 400 and "job id" in bad.text
    long = client.post("/account/support", data={"message": "x" * 5001, "csrf_token": token})
    assert long.status_code == 400 and "at most 5000 characters" in long.text
    resp = client.post("/account/support", data={"message": "The seams <b>show</b>",
                                                 "job_id": job_id, "csrf_token": token})
    assert resp.status_code == 200 and "your message was sent" in resp.text
    page = admin_client(app).get("/admin").text
    assert "The seams &lt;b&gt;show&lt;/b&gt;" in page and job_id in page
    assert "ada@example.com" in page and "Ada Lovelace" in page
    uid = user_row(app).name  # the users table names the person behind the id too
    assert (f'data-owner="{uid}"><td>{uid}<br><small class="muted person">'
            "Ada Lovelace · ada@example.com</small>") in page


def test_support_messages_per_account_are_limited(hosted):
    app = hosted(support_messages_per_day=2)
    client = app.test_client()
    sign_up(client)
    token = page_token(client, "/account/support")
    for i in range(2):
        resp = client.post("/account/support", data={"message": f"m{i}", "csrf_token": token})
        assert resp.status_code == 200
    resp = client.post("/account/support", data={"message": "third", "csrf_token": token})
    assert resp.status_code == 429 and "You have sent 2 messages today" in resp.text
    assert "third</textarea>" in resp.text  # the text is kept in the form
    with services_of(app).db.session() as s:
        assert len(s.scalars(select(SupportMessage)).all()) == 2


def test_export_downloads_the_persons_data_and_nobody_elses(app):
    client, other = app.test_client(), app.test_client()
    sign_up(client)
    sign_up(other, email="bob@example.com", name="Bob")
    mine, theirs = upscale(client, new_key(client, credits=10)), upscale(other, new_key(
        other, credits=10))
    assert client.post("/account/export").status_code == 403  # no CSRF token
    resp = client.post("/account/export", data={"csrf_token": page_token(client)})
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert "attachment" in resp.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(resp.data))
    person = json.loads(archive.read("account.json"))["user"]
    assert (person["display_name"], person["email"]) == ("Ada Lovelace", "ada@example.com")
    jobs = json.loads(archive.read("jobs.json"))
    assert [j["id"] for j in jobs] == [mine] and jobs[0]["state"] == "queued"
    kinds = sorted(e["kind"] for e in json.loads(archive.read("ledger.json")))
    assert kinds == ["grant", "hold"]
    upload = jobs[0]["inputs"]["image"]
    assert Image.open(io.BytesIO(archive.read(upload))).size == (16, 16)
    assert not [n for n in archive.namelist() if theirs in n]


def test_deleting_the_account_needs_the_password_and_erases_it(app):
    client = app.test_client()
    sign_up(client)
    key = new_key(client, credits=10)
    job_id = upscale(client, key)
    user = user_row(app).name
    services = services_of(app)
    assert services.blobs.job_dir(job_id).is_dir()
    assert client.post("/account/delete", data={"password": PASSWORD}).status_code == 403
    token = page_token(client, "/account/delete")
    wrong = client.post("/account/delete", data={"password": "not my password",
                                                  "csrf_token": token})
    assert wrong.status_code == 401 and "not deleted" in wrong.text and user_row(app) is not None
    resp = client.post("/account/delete", data={"password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 200 and "Account deleted" in resp.text
    assert "aiedit_session=;" in set_cookies(resp)["aiedit_session"]
    assert user_row(app) is None and not services.blobs.job_dir(job_id).exists()
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 401
    assert client.get("/account").status_code == 303
    assert sign_in(app.test_client()).status_code == 401
    with services.db.session() as s:
        assert s.scalars(select(ApiKey)).all() == [] and s.get(Job, job_id) is None
        rows = s.scalars(select(LedgerEntry)).all()
    # the grant, the job's hold and its release (canceled first) stay as amounts only
    assert sorted(r.amount for r in rows) == [-1, 1, 10]
    assert all(r.account_id is None and r.job_id is None for r in rows)
    assert user not in json.dumps([(r.reason, r.ref) for r in rows])


def test_delete_through_the_api_needs_the_password(hosted):
    app = hosted(sign_in_failures_per_account_per_hour=2)
    client = app.test_client()
    sign_up(client)
    key = new_key(client)
    for body, status, code in (({}, 422, "invalid_params"),
                               ({"password": "wrong one"}, 403, "wrong_password"),
                               ({"password": "wrong two"}, 403, "wrong_password"),
                               ({"password": PASSWORD}, 429, "rate_limited")):
        resp = client.delete("/v1/account", json=body, headers=bearer(key))
        assert (resp.status_code, resp.get_json()["code"]) == (status, code), resp.get_json()
    assert user_row(app) is not None
    app2 = hosted()  # fresh limits
    client = app2.test_client()
    sign_up(client)
    key = new_key(client)
    assert client.delete("/v1/account", json={"password": PASSWORD},
                         headers=bearer(key)).status_code == 204
    assert user_row(app2) is None
    assert client.get("/v1/account", headers=bearer(key)).status_code == 401
    db = services_of(app2).db
    create_user(db, "studio-made")
    _, made = create_key(db, "k", user="studio-made")
    resp = client.delete("/v1/account", json={"password": "x"}, headers=bearer(made))
    assert resp.status_code == 409 and "aiedit users erase" in resp.get_json()["message"]


def test_account_pages_exist_in_hosted_mode_only(make_app):
    client = make_app().test_client()
    assert client.get("/account/signup").status_code == 404
    assert client.delete("/v1/account", json={"password": "x"}).status_code == 404


# --- abuse limits -----------------------------------------------------------------------------


def test_sign_ups_per_address_are_limited(hosted):
    app = hosted(sign_ups_per_address_per_hour=2)
    for i in range(2):
        assert sign_up(app.test_client(), email=f"p{i}@example.com").status_code == 303
    resp = sign_up(app.test_client(), email="p3@example.com")
    assert resp.status_code == 429 and "Too many sign-ups from this address" in resp.text
    assert "at most 2 an hour" in resp.text and user_row(app, "p3@example.com") is None
    elsewhere = sign_up(app.test_client(), email="p3@example.com",
                        environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.status_code == 303


def test_behind_a_trusted_proxy_the_forwarded_address_is_limited_and_only_then(hosted):
    behind_proxy = hosted(sign_ups_per_address_per_hour=1, proxy_hops=1)
    for address, status in (("203.0.113.5", 303), ("203.0.113.5", 429), ("198.51.100.7", 303)):
        resp = sign_up(behind_proxy.test_client(), email=f"{address}-{status}@example.com",
                       headers={"X-Forwarded-For": address})
        assert resp.status_code == status, address
    direct = hosted(sign_ups_per_address_per_hour=1)  # the header is anyone's to send
    assert sign_up(direct.test_client(), email="a@example.com",
                   headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 303
    resp = sign_up(direct.test_client(), email="b@example.com",
                   headers={"X-Forwarded-For": "192.0.2.2"})
    assert resp.status_code == 429


def test_failed_sign_ins_are_limited_per_address_and_per_account(hosted):
    app = hosted(sign_in_failures_per_address_per_hour=3,
                 sign_in_failures_per_account_per_hour=2)
    sign_up(app.test_client())
    sign_up(app.test_client(), email="bob@example.com", name="Bob")
    # Per account: guesses from many addresses; then even the right password waits.
    for i in range(2):
        resp = sign_in(app.test_client(), password="guess number one",
                       environ_base={"REMOTE_ADDR": f"10.0.0.{i}"})
        assert resp.status_code == 401
    resp = sign_in(app.test_client(), environ_base={"REMOTE_ADDR": "10.0.1.1"})
    assert resp.status_code == 429 and "for this account" in resp.text
    assert "aiedit_session" not in set_cookies(resp)
    # Per address: guesses at several accounts from one address.
    for email in ("carol@example.com", "dave@example.com", "erin@example.com"):
        sign_in(app.test_client(), email, "guess", environ_base={"REMOTE_ADDR": "10.7.7.7"})
    resp = sign_in(app.test_client(), "bob@example.com",
                   environ_base={"REMOTE_ADDR": "10.7.7.7"})
    assert resp.status_code == 429 and "from this address" in resp.text
    assert sign_in(app.test_client(), "bob@example.com").status_code == 303


def test_requests_are_limited_per_account_across_keys_and_api_processes(hosted):
    app = hosted(rate_limit_per_minute=4)
    second_process = hosted(same_as=app, rate_limit_per_minute=4)
    client = app.test_client()
    sign_up(client)
    keys = [new_key(client, "one"), new_key(client, "two")]
    other = second_process.test_client()
    answers = [c.get("/v1/jobs", headers=bearer(k)).status_code
               for c, k in ((client, keys[0]), (other, keys[1])) * 2]
    assert answers == [200] * 4
    resp = other.get("/v1/jobs", headers=bearer(keys[0]))
    assert resp.status_code == 429
    body = resp.get_json()
    assert body["code"] == "rate_limited" and "4 a minute per account" in body["message"]
    assert int(resp.headers["Retry-After"]) >= 1
    sign_up(second_process.test_client(), email="bob@example.com", name="Bob")
    bob = second_process.test_client()
    sign_in(bob, "bob@example.com")
    assert bob.get("/v1/jobs", headers=bearer(new_key(bob))).status_code == 200
