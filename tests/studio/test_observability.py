"""Operators' view of a studio: /metrics from any API process, the admin page over real HTTP, and
JSON logs from the API processes and workers (PostgreSQL, Redis, Celery, gunicorn: all real)."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import box_mask, noise_image, png_bytes
from tests.studio.conftest import get_job, post_job, wait_state
from tests.studio.test_studio import slow_job, wait_running

pytestmark = [pytest.mark.studio, pytest.mark.timeout(300)]
PROMPT = "a studio-secret prompt 91c2"


def scrape(url, headers=None) -> dict[tuple, float]:
    resp = requests.get(url + "/metrics", headers=headers or {}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text) for s in family.samples
    }


def admin_session(url, headers) -> tuple[requests.Session, str]:
    """Sign in to /admin as a browser would; returns the session and the page's CSRF token."""
    browser = requests.Session()
    form = browser.get(url + "/admin", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    key = headers["Authorization"].split()[1]
    resp = browser.post(url + "/admin/login", data={"key": key, "csrf_token": token}, timeout=30)
    assert resp.status_code == 200 and "signed in as" in resp.text, resp.text[:2000]
    token = re.search(r'name="csrf_token" value="([^"]+)"', resp.text).group(1)
    return browser, token


def post_inpaint(url, headers) -> str:
    request = {"operation": "inpaint", "model": "classic-telea", "params": {"prompt": PROMPT}}
    resp = requests.post(
        url + "/v1/jobs", data={"request": json.dumps(request)}, headers=headers, timeout=60,
        files={"image": ("image.png", png_bytes(noise_image(24, 24))),
               "mask": ("mask.png", png_bytes(box_mask(24, 24, (4, 4, 12, 12))))},
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_metrics_admin_page_and_logs_across_studio_processes(studio_factory):
    studio = studio_factory()
    boss = studio.user("boss", role="admin")
    alice = studio.user("alice")
    studio.start_api(workers=2)

    # no worker yet: jobs wait; the admin page lists them with their owner and cancels one
    bob = studio.user("bob")
    waiting = [post_job(studio.url, alice).json()["id"] for _ in range(3)]
    prompted = post_inpaint(studio.url, alice)
    bobs = post_job(studio.url, bob).json()["id"]
    browser, token = admin_session(studio.url, boss)
    page = browser.get(studio.url + "/admin", timeout=30).text
    # listed in the fair order the queue will start them, as the API reports it to their owners
    positions = {j: get_job(studio.url, alice, j)["queue_position"]
                 for j in [*waiting, prompted]}
    positions[bobs] = get_job(studio.url, bob, bobs)["queue_position"]
    listed = re.findall(r'<tr data-job="([0-9a-f]+)" class="state-queued"', page)
    assert listed == sorted(positions, key=positions.get)
    assert positions[bobs] < positions[prompted]  # bob does not wait behind all of alice's jobs
    for job_id in waiting:
        row = re.search(rf'<tr data-job="{job_id}".*?</tr>', page, re.S).group(0)
        assert "queued" in row and "alice" in row and "classic-lanczos" in row
    resp = browser.post(f"{studio.url}/admin/jobs/{waiting[0]}/cancel",
                        data={"csrf_token": token}, timeout=30)
    assert resp.status_code == 200 and f"Job {waiting[0][:8]} canceled." in resp.text
    depth = scrape(studio.url, boss)
    assert sum(v for k, v in depth.items() if k[0] == "aiedit_queue_depth") == 4

    # a worker runs the rest; a slow job is canceled from the admin page while it runs
    studio.start_worker("w1")
    for job_id in [*waiting[1:], prompted]:
        assert wait_state(studio.url, alice, job_id)["state"] == "succeeded"
    assert wait_state(studio.url, bob, bobs)["state"] == "succeeded"
    slow = slow_job(studio.url, alice)
    wait_running(studio, alice, slow)
    resp = browser.post(f"{studio.url}/admin/jobs/{slow}/cancel", data={"csrf_token": token},
                        timeout=30)
    assert resp.status_code == 200
    assert wait_state(studio.url, alice, slow)["state"] == "canceled"

    # every API process reports the same shared numbers (gunicorn spreads the scrapes)
    lanczos = (("model", "classic-lanczos"), ("operation", "upscale"))
    for _ in range(4):
        m = scrape(studio.url)  # loopback, no key
        assert m[("aiedit_jobs_finished_total", (*lanczos, ("state", "succeeded")))] == 3
        assert m[("aiedit_jobs_finished_total", (*lanczos, ("state", "canceled")))] == 2
        assert m[("aiedit_job_duration_seconds_count", lanczos)] == 3
        assert m[("aiedit_workers", (("device", "cpu"),))] == 1
        assert m[("aiedit_worker_model_loaded",
                  (("device", "cpu"), ("model", "classic-lanczos"), ("worker", "w1")))] == 1
    assert requests.get(studio.url + "/metrics", headers=alice, timeout=30).status_code == 403

    page = browser.get(studio.url + "/admin", timeout=30).text
    workers = page[page.index('id="workers"'):page.index('id="users"')]
    assert "w1" in workers and "classic-lanczos" in workers
    users = page[page.index('id="users"'):]
    assert re.search(r'<tr data-owner="alice"><td>alice</td><td>member</td>\s*'
                     r'<td class="num">5</td>', users)

    # JSON logs (studio's default) from the API processes and the worker: every line an
    # object, the jobs' lines carry their ids, the prompt appears nowhere
    time.sleep(0.5)
    studio.close()
    api_lines = [json.loads(line) for line in studio.api.log().splitlines()]  # gunicorn's too
    assert any(line["logger"].startswith("gunicorn") for line in api_lines)
    # Celery writes one raw console notice as it stops (from a signal handler, unformatted)
    worker_text = [line for line in studio.workers[0].log().splitlines()
                   if line.strip() and not line.startswith("worker: Warm shutdown")]
    worker_lines = [json.loads(line) for line in worker_text]
    assert any(" ready." in line["message"] for line in worker_lines)
    for job_id in [*waiting[1:], prompted]:
        assert any(line.get("job_id") == job_id and line["message"] == "job queued"
                   for line in api_lines)
        assert [line["message"] for line in worker_lines if line.get("job_id") == job_id][-1] \
            == "job succeeded"
    assert PROMPT not in studio.api.log() + studio.workers[0].log()
