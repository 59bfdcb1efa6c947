"""The admin page's sign-in, session cookie and CSRF rules (Flask test client; the browser test
is test_admin_browser.py)."""

from __future__ import annotations

import re

import pytest

from aiedit.app import create_app, services_of
from aiedit.auth.keys import create_key, revoke_key
from aiedit.config import Config
from tests.helpers import noise_image, png_bytes, submit

REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


@pytest.fixture
def stopped_app(config):
    """Workers not started: submitted jobs stay queued."""
    app = create_app(config, start=False)
    yield app
    services_of(app).stop()


@pytest.fixture
def keys(stopped_app):
    db = services_of(stopped_app).db
    return {"admin": create_key(db, "ops", "admin")[1], "alice": create_key(db, "alice")[1]}


def form_token(resp) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', resp.get_data(as_text=True)).group(1)


def set_cookies(resp) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in resp.headers.getlist("Set-Cookie")}


def sign_in(client, key, **kwargs):
    token = form_token(client.get("/admin", **kwargs))
    return client.post("/admin/login", data={"key": key, "csrf_token": token}, **kwargs)


def queued_job(app, client, key) -> str:
    resp = submit(client, "upscale", {"image": png_bytes(noise_image(16, 16))},
                  headers={"Authorization": f"Bearer {key}"}, model="classic-lanczos")
    assert resp.status_code == 202
    return resp.get_json()["id"]


def state_of(app, job_id) -> str:
    from aiedit.store.models import Job

    with services_of(app).db.session() as s:
        return s.get(Job, job_id).state


def test_the_session_cookie_is_httponly_strict_and_holds_no_key(stopped_app, keys):
    client = stopped_app.test_client()
    resp = sign_in(client, keys["admin"])
    assert resp.status_code == 303 and resp.headers["Location"].rstrip("/").endswith("/admin")
    cookie = set_cookies(resp)["aiedit_admin"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # loopback server, plain http
    behind_tls = stopped_app.test_client().get("/admin", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in set_cookies(behind_tls)["aiedit_admin_signin"]  # a TLS proxy in front
    assert keys["admin"].split("_", 2)[2] not in cookie
    page = client.get("/admin")
    assert page.status_code == 200 and "signed in as <strong>ops</strong>" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_the_cookie_is_secure_when_the_server_is_reachable_from_elsewhere(tmp_path, models_dir):
    config = Config(data_dir=tmp_path / "d", host="0.0.0.0", testing=True,
                    models_dir=str(models_dir))
    app = create_app(config, start=False)
    try:
        _, admin = create_key(services_of(app).db, "ops", "admin")
        client = app.test_client()
        form = client.get("/admin", environ_base=REMOTE)
        assert "Secure" in set_cookies(form)["aiedit_admin_signin"]
        assert "plain HTTP" in form.text  # the browser would drop the cookie: say so
        via_tls = client.get("/admin", environ_base=REMOTE, base_url="https://studio.example")
        assert "plain HTTP" not in via_tls.text
        resp = sign_in(client, admin, environ_base=REMOTE)
        assert set(set_cookies(resp)) == {"aiedit_admin", "aiedit_admin_signin"}
        for cookie in set_cookies(resp).values():
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    finally:
        services_of(app).stop()


def test_wrong_and_non_admin_keys_get_no_session(stopped_app, keys):
    client = stopped_app.test_client()
    wrong = sign_in(client, keys["admin"][:-3] + "xyz")
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    user = sign_in(client, keys["alice"])
    assert user.status_code == 403 and "not an admin key" in user.text
    empty = sign_in(client, "")
    assert empty.status_code == 401
    for resp in (wrong, user, empty):
        assert "aiedit_admin" not in set_cookies(resp)
    assert 'id="queue"' not in client.get("/admin").text


def test_every_post_needs_its_csrf_token(stopped_app, keys):
    client = stopped_app.test_client()
    client.get("/admin")
    resp = client.post("/admin/login", data={"key": keys["admin"]})  # no token
    assert resp.status_code == 403 and "aiedit_admin" not in set_cookies(resp)
    resp = client.post("/admin/login", data={"key": keys["admin"], "csrf_token": "forged"})
    assert resp.status_code == 403

    sign_in(client, keys["admin"])
    job_id = queued_job(stopped_app, client, keys["alice"])
    assert client.post(f"/admin/jobs/{job_id}/cancel").status_code == 403
    resp = client.post(f"/admin/jobs/{job_id}/cancel", data={"csrf_token": "forged"})
    assert resp.status_code == 403 and state_of(stopped_app, job_id) == "queued"
    assert client.post("/admin/logout").status_code == 403
    assert 'id="queue"' in client.get("/admin").text  # still signed in

    token = form_token(client.get("/admin"))
    resp = client.post(f"/admin/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert resp.status_code == 303 and state_of(stopped_app, job_id) == "canceled"
    assert f"Job {job_id[:8]} canceled." in client.get(resp.headers["Location"]).text


def test_cancel_needs_a_session(stopped_app, keys):
    client = stopped_app.test_client()
    job_id = queued_job(stopped_app, client, keys["alice"])
    resp = client.post(f"/admin/jobs/{job_id}/cancel", data={"csrf_token": "x"})
    assert resp.status_code == 401 and state_of(stopped_app, job_id) == "queued"


def test_sign_out_and_revoking_the_key_end_the_session(stopped_app, keys):
    db = services_of(stopped_app).db
    client = stopped_app.test_client()
    sign_in(client, keys["admin"])
    token = form_token(client.get("/admin"))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    assert 'id="key"' in client.get("/admin").text

    row, other_admin = create_key(db, "ops2", "admin")
    sign_in(client, other_admin)
    assert "signed in as <strong>ops2</strong>" in client.get("/admin").text
    revoke_key(services_of(stopped_app).runner, row.id)
    assert 'id="key"' in client.get("/admin").text


def test_a_keyless_server_lets_its_own_machine_in_without_a_key(app):
    client = app.test_client()
    page = client.get("/admin")
    assert "Continue as the local owner" in page.text and 'id="key"' not in page.text
    resp = client.post("/admin/login", data={"csrf_token": form_token(page)})
    assert resp.status_code == 303
    assert "signed in as <strong>local owner</strong>" in client.get("/admin").text

    remote = app.test_client()
    page = remote.get("/admin", environ_base=REMOTE)
    assert "Continue as the local owner" not in page.text
    resp = remote.post("/admin/login", data={"csrf_token": form_token(page)},
                       environ_base=REMOTE)
    assert resp.status_code == 401

    row, _ = create_key(services_of(app).db, "first-key")  # once keys exist the local session ends
    assert 'id="key"' in client.get("/admin").text
    revoke_key(services_of(app).runner, row.id)  # and revoking them does not bring it back
    page = client.get("/admin")
    assert 'id="key"' in page.text and "Continue as the local owner" not in page.text
    assert client.post("/admin/login", data={"csrf_token": form_token(page)}).status_code == 401


def test_the_page_shows_workers_and_per_user_usage(stopped_app, keys):
    client = stopped_app.test_client()
    for _ in range(3):
        queued_job(stopped_app, client, keys["alice"])
    sign_in(client, keys["admin"])
    page = client.get("/admin").text
    users = page[page.index('id="users"'):]
    row = re.search(r'<tr data-owner="[0-9a-f]+"><td>alice</td><td>user</td>(.*?)</tr>', users,
                    re.S)
    assert [int(n) for n in re.findall(r'class="num">(\d+)', row.group(1))] == [3, 3, 3, 0, 0]
    assert "embedded-auto" in page
    assert page.count('class="badge queued"') == 3
    assert "is the user's limit" not in page  # nobody has limits here


def test_failed_sign_ins_are_rate_limited_like_failed_api_keys(stopped_app, keys):
    from aiedit.api.security import FAILED_AUTH_PER_MINUTE

    client = stopped_app.test_client()
    for _ in range(FAILED_AUTH_PER_MINUTE):
        assert sign_in(client, keys["admin"][:-3] + "xyz").status_code == 401
    resp = sign_in(client, keys["admin"])  # even the right key waits now
    assert resp.status_code == 429 and "Too many failed sign-ins" in resp.text
    assert "aiedit_admin" not in set_cookies(resp)


def test_keys_of_users_sign_in_by_their_users_current_role(stopped_app):
    from aiedit.auth.users import create_user, set_limits
    from aiedit.store.models import User

    db = services_of(stopped_app).db
    create_user(db, "boss", role="admin")
    create_user(db, "carol", role="member")
    set_limits(db, "carol", max_queued=5, daily_units=40.0, clear=False)
    _, boss = create_key(db, "boss-laptop", user="boss")
    _, carol = create_key(db, "carol-krita", user="carol")
    client = stopped_app.test_client()

    assert sign_in(client, carol).status_code == 403
    assert sign_in(client, boss).status_code == 303
    page = client.get("/admin").text
    assert "signed in as <strong>boss</strong>" in page
    users = page[page.index('id="users"'):]
    carol_row = re.search(r'<tr data-owner="carol"><td>carol</td><td>member</td>(.*?)</tr>',
                          users, re.S).group(1)
    assert "/ 40" in carol_row and "/ 5" in carol_row  # her limits, though she ran nothing
    assert "is the user's limit" in users

    with db.session() as s:
        s.get(User, "boss").role = "member"  # no longer an admin: the session ends
    assert 'id="key"' in client.get("/admin").text
