"""The admin page in headless Chromium (Debian's `chromium`, driven by Playwright), against a real
`aiedit serve` running tiny diffusion jobs: sign in, see a running job, cancel it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.fixtures.tiny_server import ensure_tiny_hub, tiny_env
from tests.helpers import AIEDIT_BIN, LiveServer
from tests.web.conftest import TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.ml, pytest.mark.browser]


def create_key(data_dir: Path, name: str, role: str = "user") -> str:
    out = subprocess.run(
        [str(AIEDIT_BIN), "keys", "create", "--name", name, "--role", role,
         "--data-dir", str(data_dir)],
        check=True, capture_output=True, text=True,
    ).stdout
    return out.strip().split()[-1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A server with the tiny models, an admin key and a user key."""
    data = tmp_path_factory.mktemp("admin") / "data"
    data.mkdir(parents=True)
    keys = {"admin": create_key(data, "ops", "admin"), "alice": create_key(data, "alice")}
    server = LiveServer(data, env=tiny_env(ensure_tiny_hub())).start()
    yield server, keys
    server.stop()


def submit_generate(server, key: str, steps: int = 150) -> dict:
    request = {"operation": "generate", "model": "tiny-sdxl",
               "params": {"prompt": "a slow lighthouse", "steps": steps, "count": 4},
               "region": {"x": 0, "y": 0, "width": 64, "height": 64}}
    resp = requests.post(server.url + "/v1/jobs", files={"request": (None, json.dumps(request))},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert resp.status_code == 202, resp.text
    return resp.json()


def job_state(server, key: str, job_id: str, wait: float = 0) -> dict:
    return requests.get(f"{server.url}/v1/jobs/{job_id}?wait={wait}",
                        headers={"Authorization": f"Bearer {key}"}, timeout=60).json()


def sign_in(page, server, key: str):
    page.goto(server.url + "/admin")
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_sign_in_see_a_running_job_and_cancel_it(studio, page, tmp_path):
    from playwright.sync_api import expect

    server, keys = studio
    running = submit_generate(server, keys["alice"])
    waiting = submit_generate(server, keys["alice"], steps=2)

    sign_in(page, server, keys["admin"])
    expect(page.locator("header .meta")).to_contain_text("signed in as ops")
    row = page.locator(f'#queue tr[data-job="{running["id"]}"]')
    # the page refreshes itself: the job shows as running with its denoising progress
    expect(row.locator(".badge")).to_have_text("running", timeout=TIMEOUT_MS)
    expect(row.locator("td.progress small")).to_contain_text("denoising", timeout=TIMEOUT_MS)
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text("tiny-sdxl")
    expect(page.locator(f'#queue tr[data-job="{waiting["id"]}"] .badge')).to_have_text("queued")
    expect(page.locator("#workers")).to_contain_text("tiny-sdxl")  # the model the worker holds
    expect(page.locator("#users")).to_contain_text("alice")
    page.screenshot(path=os.environ.get("AIEDIT_ADMIN_SCREENSHOT") or str(tmp_path / "a.png"),
                    full_page=True)

    with page.expect_navigation():
        row.get_by_role("button", name=re.compile("Cancel")).click()
    expect(page.locator(".notice")).to_contain_text(running["id"][:8])
    job = job_state(server, keys["alice"], running["id"])
    while job["state"] == "running":
        job = job_state(server, keys["alice"], running["id"], wait=5)
    assert job["state"] == "canceled" and job["progress"]["step"] < 150
    expect(page.locator(f'#recent tr[data-job="{running["id"]}"] .badge')).to_have_text(
        "canceled", timeout=TIMEOUT_MS)

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["aiedit_admin"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/admin"
    assert not session["secure"]  # plain http on loopback; Secure elsewhere (test_admin.py)


def test_wrong_and_non_admin_keys_are_refused(studio, page):
    from playwright.sync_api import expect

    server, keys = studio
    sign_in(page, server, keys["admin"][:-4] + "abcd")
    expect(page.locator(".error")).to_contain_text("unknown or revoked")
    sign_in(page, server, keys["alice"])
    expect(page.locator(".error")).to_contain_text("not an admin key")
    assert "aiedit_admin" not in {c["name"] for c in page.context.cookies()}
    expect(page.locator("#queue")).to_have_count(0)


def test_the_served_metrics_count_finished_jobs(studio):
    """Through the real server (waitress): loopback needs no key, a user key is refused."""
    server, keys = studio
    job = submit_generate(server, keys["alice"], steps=2)
    while job["state"] in ("queued", "running"):
        job = job_state(server, keys["alice"], job["id"], wait=10)
    assert job["state"] == "succeeded", job
    resp = requests.get(server.url + "/metrics", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert 'aiedit_jobs_finished_total{model="tiny-sdxl",operation="generate",' \
        'state="succeeded"}' in resp.text
    resp = requests.get(server.url + "/metrics", timeout=30,
                        headers={"Authorization": f"Bearer {keys['alice']}"})
    assert resp.status_code == 403
