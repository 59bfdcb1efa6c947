"""A video job that takes the server down with it (SIGKILL, as the kernel's OOM killer sends) is
run again once, and when it takes the server down a second time it fails as `interrupted`
instead of killing every restart: the attempt is counted when the run starts, not when it ends."""

from __future__ import annotations

import time

import pytest
import requests

from tests.fixtures.tiny_server import ensure_tiny_hub, tiny_env
from tests.helpers import noise_image, png_bytes
from tests.proof.conftest import post_job

pytestmark = [pytest.mark.e2e, pytest.mark.ml]

SLOW_VIDEO = {
    "operation": "video",
    "model": "tiny-ltx-video",
    "params": {"prompt": "waves", "frames": 129, "steps": 150, "fps": 8},
}


def wait_running(url: str, job_id: str, timeout: float = 180.0) -> dict:
    """Until the job is running with a denoising step done (the model is loaded and working)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if job["state"] == "running" and job["progress"]["stage"] == "denoising" and \
                job["progress"]["step"] >= 1:
            return job
        assert job["state"] in ("queued", "running"), job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got going: {job}")


def test_a_video_job_that_kills_the_server_twice_fails_as_interrupted(server_factory):
    env = tiny_env(ensure_tiny_hub())
    server = server_factory(env=env)
    resp = post_job(server.url, SLOW_VIDEO, {"image": png_bytes(noise_image(48, 32))})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]

    wait_running(server.url, job_id)
    server.kill()  # first run dies with the server

    second = server_factory(data_dir=server.data_dir, env=env)
    wait_running(second.url, job_id)  # re-run once
    second.kill()  # and it takes the server down again

    third = server_factory(data_dir=server.data_dir, env=env)
    job = requests.get(f"{third.url}/v1/jobs/{job_id}", timeout=10).json()
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "interrupted", job
    time.sleep(1.0)
    again = requests.get(f"{third.url}/v1/jobs/{job_id}", timeout=10).json()
    assert again["state"] == "failed" and again["started_at"] == job["started_at"], again
    fresh = post_job(third.url, {"operation": "upscale", "model": "classic-lanczos"},
                     {"image": png_bytes(noise_image(8, 8))})
    assert fresh.status_code == 202, fresh.text
