"""Security: access across key owners on every endpoint, keys hashed and compared in constant time,
rate limits, upload limits, CORS, security headers, and no server-side fetch of user URLs."""

from __future__ import annotations

import hmac
import json
import re
import socket
import threading

import pytest
import requests

from aiedit.api.security import LONG_POLL_COST, RateLimiter
from aiedit.app import services_of
from aiedit.auth import keys as keys_module
from aiedit.auth.keys import create_key
from aiedit.config import Config
from tests.helpers import LiveServer, box_mask, noise_image, png_bytes, submit, wait_finished
from tests.proof.conftest import assert_error, post_job, wait_job

IMAGE = png_bytes(noise_image(16, 16))
MASK = png_bytes(box_mask(16, 16, (4, 4, 8, 8)))


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# --- access across key owners -----------------------------------------------------------------


def v1_rules(app) -> list[tuple[str, str]]:
    """(method, rule) for every /v1 route the app has: new endpoints are covered automatically."""
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def fill(rule: str, job_id: str) -> str:
    return rule.replace("<job_id>", job_id).replace("<int:index>", "0")


def test_every_endpoint_checks_the_key_and_hides_other_owners_jobs(make_app):
    app = make_app(rate_limit_per_minute=0)
    client = app.test_client()
    db = services_of(app).db
    _, alice = create_key(db, "alice")
    _, bob = create_key(db, "bob")
    _, admin = create_key(db, "root", role="admin")
    job = submit(client, "upscale", {"image": IMAGE}, headers=bearer(alice)).get_json()
    wait_finished(client, job["id"], headers=bearer(alice))

    for method, rule in v1_rules(app):
        url = fill(rule, job["id"])
        call = getattr(client, method.lower())
        if rule == "/v1/health":
            assert call(url).status_code == 200
            continue
        if rule == "/v1/billing/webhook":  # Stripe signs it instead; no credits off hosted mode
            assert call(url, headers={"Stripe-Signature": "t=1,v1=00"}).status_code == 404
            continue
        for headers in ({}, bearer("garbage"), bearer(alice[:-3] + "abc")):
            resp = call(url, headers=headers)
            assert resp.status_code == 401, (method, rule, headers, resp.status_code)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        if "<job_id>" in rule:
            resp = call(url, headers=bearer(bob))
            assert resp.status_code == 404, (method, rule)
            assert resp.get_json()["code"] == "job_not_found"
    own = client.get(f"/v1/jobs/{job['id']}/results/0", headers=bearer(alice))
    assert own.status_code == 200
    assert client.get("/v1/jobs", headers=bearer(bob)).get_json() == []
    assert client.get(f"/v1/jobs/{job['id']}", headers=bearer(admin)).status_code == 200
    assert client.delete(f"/v1/jobs/{job['id']}", headers=bearer(alice)).status_code == 204
    job_rules = {rule for _, rule in v1_rules(app) if "<job_id>" in rule}
    assert job_rules == {"/v1/jobs/<job_id>", "/v1/jobs/<job_id>/results/<int:index>",
                         "/v1/jobs/<job_id>/preview", "/v1/jobs/<job_id>/events"}, (
        "a new job endpoint appeared: check that it uses _own_job"
    )


def test_an_idempotency_key_does_not_leak_another_owners_job(make_app):
    app = make_app(rate_limit_per_minute=0)
    client = app.test_client()
    db = services_of(app).db
    _, alice = create_key(db, "alice")
    _, bob = create_key(db, "bob")
    key = {"Idempotency-Key": "same-key"}
    first = submit(client, "upscale", {"image": IMAGE}, headers=bearer(alice) | key).get_json()
    second = submit(client, "upscale", {"image": IMAGE}, headers=bearer(bob) | key).get_json()
    assert first["id"] != second["id"]


def test_keys_are_hashed_and_compared_in_constant_time(make_app, monkeypatch):
    app = make_app()
    db = services_of(app).db
    row, key = create_key(db, "carol")
    secret = key.split("_", 2)[2]
    assert secret not in row.secret_hash and key not in row.secret_hash
    compared = []
    constant_time_compare = hmac.compare_digest

    def recording_compare(a, b):
        compared.append((a, b))
        return constant_time_compare(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", recording_compare)
    wrong_secret = f"aiedit_{row.id}_{'x' * len(secret)}"
    unknown_id = f"aiedit_ffffffffffff_{secret}"
    for token in (wrong_secret, unknown_id, key):
        compared.clear()
        keys_module.authenticate(db, token)
        assert len(compared) == 1, f"{token[:20]}…: not compared with hmac.compare_digest"
        assert all(len(a) == len(b) == 64 for a, b in compared), "hashes, not secrets, compared"


# --- rate limits ------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(make_app):
    app = make_app(rate_limit_per_minute=10)
    client = app.test_client()
    for _ in range(10):
        assert client.get("/v1/models").status_code == 200
    resp = client.get("/v1/operations")
    assert resp.status_code == 429
    body = resp.get_json()
    assert body["code"] == "rate_limited" and "rate_limit_per_minute" in body["message"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 6
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for _ in range(30):
        assert client.get("/v1/health").status_code == 200, "health is never limited"


def test_rate_limit_is_per_verified_owner(make_app):
    app = make_app(rate_limit_per_minute=5)
    client = app.test_client()
    db = services_of(app).db
    _, alice = create_key(db, "alice")
    _, bob = create_key(db, "bob")
    guess = alice[:-4] + "zzzz"  # alice's key id, a wrong secret
    for _ in range(8):
        assert client.get("/v1/models", headers=bearer(guess)).status_code == 401
    for _ in range(5):
        assert client.get("/v1/models", headers=bearer(alice)).status_code == 200, (
            "a guesser using alice's key id must not spend alice's budget"
        )
    limited = client.get("/v1/models", headers=bearer(alice))
    assert limited.status_code == 429
    assert "rate_limit_per_minute" in limited.get_json()["message"]
    assert client.get("/v1/models", headers=bearer(bob)).status_code == 200


def test_failed_authentications_are_limited_per_address_before_keys_are_checked(
    make_app, monkeypatch
):
    from aiedit.api import security

    monkeypatch.setattr(security, "FAILED_AUTH_PER_MINUTE", 4)
    app = make_app(rate_limit_per_minute=100)
    client = app.test_client()
    _, alice = create_key(services_of(app).db, "alice")
    for guess in range(4):
        resp = client.get("/v1/jobs", headers=bearer(f"{alice[:-6]}zz{guess:04d}"))
        assert resp.status_code == 401
    assert client.get("/v1/jobs").status_code == 429, "no key at all counts as a failure too"
    refused = client.get("/v1/jobs", headers=bearer(alice))
    assert refused.status_code == 429, "once the address is limited, no key is checked"
    body = refused.get_json()
    assert body["code"] == "rate_limited" and "failed authentications" in body["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    elsewhere = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/v1/jobs", headers=bearer(alice), environ_base=elsewhere).status_code == 200
    assert client.get("/v1/health").status_code == 200


def test_long_polls_cost_a_fraction_so_plugins_can_follow_jobs(make_app):
    app = make_app(rate_limit_per_minute=10)
    app.extensions["aiedit.rate_limits"].requests._clock = lambda: 0.0  # no refill while polling
    client = app.test_client()
    job = submit(client, "upscale", {"image": IMAGE}).get_json()  # 1 token
    allowed = 0
    while client.get(f"/v1/jobs/{job['id']}?wait=0.01").status_code == 200 and allowed < 100:
        allowed += 1
    assert allowed in (44, 45), f"{allowed} long-polls for 9 tokens at {LONG_POLL_COST} each"


def test_rate_limiter_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    for _ in range(60):
        assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.take("a") == 0
    assert limiter.take("b") == 0, "another client has its own bucket"


def test_default_limit_is_generous_enough_for_a_plugin():
    """A plugin following a job long-polls each time the job changes (progress is written at
    most five times a second): ten minutes of that are never refused under the default."""
    now = [0.0]
    limiter = RateLimiter(Config().rate_limit_per_minute, clock=lambda: now[0])
    for tick in range(600 * 5):
        now[0] = tick / 5
        assert limiter.take("plugin", LONG_POLL_COST) == 0, tick


# --- upload limits ----------------------------------------------------------------------------


def test_upload_limits_over_http(tmp_path):
    server = LiveServer(tmp_path / "data", env={"AIEDIT_MAX_UPLOAD_BYTES": "1000000"}).start()
    try:
        request = {"operation": "upscale", "model": "classic-lanczos"}
        just_over = post_job(server.url, request, {"image": b"\x00" * 1_010_000})
        body = assert_error(just_over, 413, "too_large")
        assert "max_upload_bytes" in body["message"]
        far_over = post_job(server.url, request, {"image": b"\x00" * 4_000_000})
        assert far_over.status_code == 413, "refused by the HTTP server before it is read"
        assert requests.get(server.url + "/v1/health", timeout=5).ok
        assert list((server.data_dir / "blobs").iterdir()) == []
    finally:
        server.stop()


# --- CORS and headers -------------------------------------------------------------------------


def test_no_cors_by_default(make_app):
    client = make_app().test_client()
    origin = {"Origin": "https://elsewhere.example"}
    resp = client.get("/v1/models", headers=origin)
    assert "Access-Control-Allow-Origin" not in resp.headers
    preflight = client.options(
        "/v1/jobs", headers=origin | {"Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_for_configured_origins_only(make_app):
    client = make_app(cors_origins=["https://panel.example"]).test_client()
    allowed = {"Origin": "https://panel.example"}
    preflight = client.options(
        "/v1/jobs",
        headers=allowed
        | {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://panel.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Aiedit-Request" in preflight.headers["Access-Control-Allow-Headers"]  # jobs/raw
    resp = client.get("/v1/models", headers=allowed)
    assert resp.headers["Access-Control-Allow-Origin"] == "https://panel.example"
    assert "X-Image-Width" in resp.headers["Access-Control-Expose-Headers"]
    assert "Origin" in resp.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in resp.headers
    other = client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_security_headers_on_every_kind_of_response(make_app):
    client = make_app().test_client()
    job = submit(client, "upscale", {"image": IMAGE}).get_json()
    wait_finished(client, job["id"])
    for url in (
        "/v1/health",
        "/v1/models",
        "/openapi.json",
        "/v1/jobs/nope",
        "/nowhere",
        f"/v1/jobs/{job['id']}/results/0",
        "/docs",
        "/docs/assets/swagger-ui.css",
    ):
        resp = client.get(url)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", url
        assert resp.headers["X-Frame-Options"] == "DENY", url
        assert resp.headers["Referrer-Policy"] == "no-referrer", url
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp, url
        if resp.mimetype != "text/html":
            assert csp.startswith("default-src 'none'"), url


def test_docs_page_is_served_offline_under_a_strict_csp(make_app):
    import base64
    import hashlib

    client = make_app().test_client()
    page = client.get("/docs")
    csp = page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp.split("style-src")[0], "scripts only by hash or 'self'"
    html = page.get_data()
    assert b"https://" not in html, "Swagger UI comes from this server, not a CDN"
    for src in re.findall(rb'src="([^"]+)"', html):
        assert client.get(src.decode()).status_code == 200, src
    for body in re.findall(rb"<script>(.*?)</script>", html, re.S):
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert f"'sha256-{digest}'" in csp


# --- no server-side fetch of user-supplied URLs -------------------------------------------------


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_user_supplied_urls_are_never_fetched(proof_server):
    listener = Listener()
    url = f"http://127.0.0.1:{listener.port}/x.png"
    try:
        tries = [
            (
                {"operation": "inpaint", "params": {"prompt": url, "negative_prompt": url}},
                {"image": IMAGE, "mask": MASK},
            ),
            ({"operation": "upscale", "model": url}, {"image": IMAGE}),
            ({"operation": "upscale", "image": url, "url": url}, {"image": IMAGE}),
            ({"operation": "upscale"}, {"image": (url, IMAGE)}),
            ({"operation": "upscale"}, {"image": url.encode()}),
            ({"operation": "upscale", "params": {"model_url": url}}, {"image": IMAGE}),
        ]
        for request, files in tries:
            resp = post_job(
                proof_server.url,
                json.dumps(request),
                files,
                headers={"Referer": url, "Idempotency-Key": url},
            )
            if resp.status_code == 202:
                wait_job(proof_server.url, resp.json()["id"])
        requests.get(f"{proof_server.url}/v1/jobs", params={"url": url}, timeout=10)
        assert listener.connections == 0, "the server connected to a URL a client supplied"
    finally:
        listener.close()
