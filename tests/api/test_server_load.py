"""A busy server still serves: long-polls are capped below half the threads (over the cap:
429 at once), so /v1/health and submissions answer while 64 long-polls are open; classic jobs
have their own CPU lane and never wait behind GPU work."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter

import pytest
import requests
from waitress import create_server

from aiedit.app import create_app, services_of
from aiedit.cli import waitress_settings
from aiedit.ops import base
from aiedit.ops.base import ImageOutput
from tests.helpers import noise_image, png_bytes, submit, wait_finished

IMAGE = png_bytes(noise_image(16, 16))
LONG_POLLS = 64


@pytest.fixture
def blocked_restore(monkeypatch):
    """`restore` runs until the test sets the returned event (it uses no CPU meanwhile)."""
    release = threading.Event()

    def run(ctx):
        while not release.wait(0.05):
            ctx.progress(0, 1, "waiting")
        return [ImageOutput(ctx.inputs["image"].copy())]

    registry = base.registry()
    monkeypatch.setitem(registry, "restore", dataclasses.replace(registry["restore"], run=run))
    yield release
    release.set()


@pytest.fixture
def served(config):
    """The app behind a real waitress server with the settings `aiedit serve` uses."""
    app = create_app(config)
    server = create_server(app, host="127.0.0.1", port=0, **waitress_settings(config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.effective_port}"
    server.close()
    services_of(app).stop()


def test_health_and_submissions_answer_while_64_long_polls_are_open(served, blocked_restore):
    app, url = served
    files = {"request": (None, '{"operation": "restore", "model": "classic-denoise"}'),
             "image": ("i.png", IMAGE, "image/png")}
    job = requests.post(url + "/v1/jobs", files=files, timeout=30).json()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # running, and its progress settled
        current = requests.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()
        if current["progress"]["stage"] == "waiting":
            break
        time.sleep(0.05)
    statuses: Counter = Counter()
    bodies = []
    lock = threading.Lock()

    def poll():
        resp = requests.get(f"{url}/v1/jobs/{job['id']}?wait=30", timeout=60)
        with lock:
            statuses[resp.status_code] += 1
            if resp.status_code == 429:
                bodies.append((resp.json(), resp.headers.get("Retry-After")))

    pollers = [threading.Thread(target=poll) for _ in range(LONG_POLLS)]
    for thread in pollers:
        thread.start()
    total, per_caller = services_of(app).config.long_poll_limits
    deadline = time.monotonic() + 20
    while statuses[429] < LONG_POLLS - per_caller and time.monotonic() < deadline:
        time.sleep(0.05)
    assert statuses[429] == LONG_POLLS - per_caller, "over the cap, long-polls answer at once"
    body, retry_after = bodies[0]
    assert body["code"] == "too_many_long_polls" and retry_after
    assert f"{per_caller} per caller" in body["message"]

    health_times = []
    for _ in range(10):
        started = time.perf_counter()
        assert requests.get(url + "/v1/health", timeout=10).ok
        health_times.append(time.perf_counter() - started)
    started = time.perf_counter()
    upscale = {"request": (None, '{"operation": "upscale", "model": "classic-lanczos"}'),
               "image": ("i.png", IMAGE, "image/png")}
    submitted = requests.post(url + "/v1/jobs", files=upscale, timeout=10)
    submit_s = time.perf_counter() - started
    assert submitted.status_code == 202
    assert max(health_times) < 0.5, health_times
    assert submit_s < 2.0

    blocked_restore.set()
    for thread in pollers:
        thread.join(30)
    assert statuses[200] == per_caller and sum(statuses.values()) == LONG_POLLS


def test_long_poll_caps_stay_below_half_the_threads():
    from aiedit.config import Config

    for threads in (4, 8, 32, 64):
        total, per_caller = Config(threads=threads).long_poll_limits
        assert 1 <= per_caller <= total < threads / 2
    assert Config(threads=32, max_long_polls=5, max_long_polls_per_key=9).long_poll_limits == (
        5, 5)


def test_classic_jobs_do_not_wait_behind_gpu_work(app, client, monkeypatch):
    services = services_of(app)
    entered, release = threading.Event(), threading.Event()
    real_run = services.runner.run

    def run(job_id):
        if not threading.current_thread().name.endswith("classic-cpu"):
            entered.set()  # a device worker (the GPU's): busy until released
            release.wait(30)
        return real_run(job_id)

    monkeypatch.setattr(services.runner, "run", run)
    try:
        # A job for a model that is not classic goes to the device queue.
        with monkeypatch.context() as patch:
            patch.setattr(services.runner, "cpu_only", lambda model, *rest: False)
            gpu_job = submit(client, "upscale", {"image": IMAGE}, model="classic-lanczos")
        assert entered.wait(10)
        classic = submit(client, "upscale", {"image": IMAGE}, model="classic-lanczos").get_json()
        done = wait_finished(client, classic["id"], timeout=20)
        assert done["state"] == "succeeded"
        gpu_id = gpu_job.get_json()["id"]
        assert client.get(f"/v1/jobs/{gpu_id}").get_json()["state"] == "queued", (
            "the device worker is still busy"
        )
        assert "embedded-classic-cpu" in {w.name for w in services.queue.workers()}
        release.set()
        assert wait_finished(client, gpu_id)["state"] == "succeeded"
    finally:
        release.set()
