"""Step previews in studio mode: a worker process runs a tiny diffusion job, and the API
processes (gunicorn, other processes than the worker) serve its previews from Redis."""

from __future__ import annotations

import json
import time

import pytest
import redis
import requests

from tests.fixtures.tiny_server import ensure_tiny_hub, tiny_env

pytestmark = [pytest.mark.studio, pytest.mark.ml, pytest.mark.timeout(300)]
STEPS = 40


def events(url, headers, job_id, timeout=120.0) -> list[tuple[str, dict]]:
    got = []
    with requests.get(f"{url}/v1/jobs/{job_id}/events", headers=headers, stream=True,
                      timeout=timeout) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith(
            "text/event-stream")
        name = None
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name:
                got.append((name, json.loads(line.removeprefix("data: "))))
                if name == "state":
                    return got
    return got


def test_previews_made_on_a_worker_are_served_by_the_api_processes(studio_factory):
    studio = studio_factory(**tiny_env(ensure_tiny_hub()))
    alice = studio.user("alice")
    studio.start_api(workers=2)
    studio.start_worker("w1")
    request = {"operation": "generate", "model": "tiny-sdxl",
               "params": {"prompt": "a lighthouse", "seed": 3, "steps": STEPS},
               "region": {"x": 0, "y": 0, "width": 64, "height": 64}}
    resp = requests.post(studio.url + "/v1/jobs", data={"request": json.dumps(request)},
                         headers=alice, timeout=60)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]

    seen = events(studio.url, alice, job_id)
    names = [name for name, _ in seen]
    assert names[-1] == "state" and seen[-1][1]["state"] == "succeeded", studio.logs()
    steps = [data["step"] for name, data in seen if name == "preview"]
    assert steps and steps == sorted(steps) and all(0 < s < STEPS for s in steps), names

    for _ in range(4):  # whichever API process answers, it has the worker's preview
        got = requests.get(f"{studio.url}/v1/jobs/{job_id}/preview", headers=alice, timeout=10)
        assert got.status_code == 200 and got.headers["Content-Type"] == "image/png"
        assert int(got.headers["X-Preview-Step"]) == steps[-1]
        assert got.content.startswith(b"\x89PNG")

    bob = studio.user("bob")
    other = requests.get(f"{studio.url}/v1/jobs/{job_id}/preview", headers=bob, timeout=10)
    assert other.status_code == 404, "another user's preview is not theirs to see"

    store = redis.Redis.from_url(studio.env["AIEDIT_BROKER_URL"])
    key = f"aiedit:preview:{job_id}"
    assert 0 < store.ttl(key) <= 3600, "a preview in Redis expires"
    assert requests.delete(f"{studio.url}/v1/jobs/{job_id}", headers=alice,
                           timeout=10).status_code in (200, 202, 204)
    deadline = time.monotonic() + 10
    while store.exists(key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not store.exists(key), "deleting the job deletes its preview"
