"""A web page in a real browser (Debian's chromium, driven by Playwright) cannot use the key-less
loopback server: neither a cross-site `fetch` that needs no preflight, nor a DNS-rebinding page
whose own host name now resolves to 127.0.0.1."""

from __future__ import annotations

import base64
import os

import pytest
import requests

from tests.e2e.test_server_process import post_job, wait
from tests.helpers import LiveServer, free_port, noise_image, png_bytes
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ATTACKER = "attacker.example"
# Chromium's own Private Network Access checks would stop these pages before the server sees
# them; Firefox, Safari and older Chromium have none. Switched off, the server must defend alone.
NO_PRIVATE_NETWORK_CHECKS = (
    "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"
)
PAGE = "<!doctype html><title>cute cats</title><p>nothing to see</p>"
ATTACK_JS = """
async ({target, png, jobId, noCors}) => {
  const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
  const form = new FormData();
  form.append("request", JSON.stringify({operation: "upscale", model: "classic-lanczos"}));
  form.append("image", new Blob([bytes], {type: "image/png"}), "image.png");
  const out = {};
  const call = async (name, url, init) => {
    try {
      const resp = await fetch(url, init);
      out[name] = {status: resp.status, body: resp.type === "opaque" ? "" : await resp.text()};
    } catch (e) {
      out[name] = {status: -1, body: String(e)};
    }
  };
  await call("post", target + "/v1/jobs",
             {method: "POST", body: form, mode: noCors ? "no-cors" : "cors"});
  await call("list", target + "/v1/jobs", {});
  await call("result", target + `/v1/jobs/${jobId}/results/0`, {});
  return out;
}
"""


@pytest.fixture(scope="module")
def victim(tmp_path_factory):
    """The user's key-less server with one finished job (the image a page would like to steal)."""
    server = LiveServer(tmp_path_factory.mktemp("victim") / "data").start()
    job = wait(server, post_job(server, "upscale", {"image": png_bytes(noise_image(16, 16))},
                                model="classic-lanczos").json()["id"])
    assert job["state"] == "succeeded"
    yield server, job
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1",
                NO_PRIVATE_NETWORK_CHECKS]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


def attacker_page(browser, url: str):
    """A page at `url` whose HTML the attacker serves (Playwright stands in for their server);
    every other request goes to the network, where the attacker's name resolves to 127.0.0.1."""
    context = browser.new_context()
    context.route(url, lambda route: route.fulfill(body=PAGE, content_type="text/html"))
    page = context.new_page()
    page.goto(url)
    return context, page


def job_ids(server) -> list[str]:
    return [job["id"] for job in requests.get(server.url + "/v1/jobs", timeout=10).json()]


def test_a_cross_site_page_cannot_submit_a_job(victim, browser):
    server, job = victim
    context, page = attacker_page(browser, f"http://{ATTACKER}:{free_port()}/")
    try:
        png = base64.b64encode(png_bytes(noise_image(8, 8))).decode()
        out = page.evaluate(ATTACK_JS, {"target": server.url, "png": png, "jobId": job["id"],
                                        "noCors": True})
    finally:
        context.close()
    assert out["post"]["status"] == 0, out  # opaque: the page never sees the answer …
    assert job_ids(server) == [job["id"]], "… and the server refused it: no job was queued"


def test_a_dns_rebinding_page_cannot_submit_or_read(victim, browser):
    server, job = victim
    context, page = attacker_page(browser, f"http://{ATTACKER}:{server.port}/")
    try:
        png = base64.b64encode(png_bytes(noise_image(8, 8))).decode()
        out = page.evaluate(ATTACK_JS, {"target": f"http://{ATTACKER}:{server.port}",
                                        "png": png, "jobId": job["id"], "noCors": False})
    finally:
        context.close()
    for name in ("post", "list", "result"):
        assert out[name]["status"] == 403, (name, out[name])
        assert "host_not_allowed" in out[name]["body"], out[name]
        assert job["id"] not in out[name]["body"]
    assert job_ids(server) == [job["id"]]
