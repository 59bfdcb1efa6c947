"""Studio mode end to end: the README's commands, gunicorn API processes, Celery workers,
PostgreSQL and Redis, all real processes on loopback."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests.fixtures.services import Redis
from tests.fixtures.studio import Studio
from tests.helpers import png_bytes
from tests.studio.conftest import get_job, job_row, post_job, started_times, wait_state

pytestmark = [pytest.mark.studio, pytest.mark.timeout(300)]


def gradient_png(size: int) -> bytes:
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    rgb = np.dstack([np.broadcast_to(ramp, (size, size))] * 3)
    return png_bytes(np.dstack([rgb, np.full((size, size), 255, np.uint8)]))


SLOW = {"image": None, "scale": 4}  # filled lazily: a ~3 s classic upscale on this machine


def slow_job(url, headers, size=1800) -> str:
    if SLOW["image"] is None or SLOW.get("size") != size:
        SLOW.update(image=gradient_png(size), size=size)
    resp = post_job(url, headers, image=SLOW["image"], scale=4)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def wait_running(studio: Studio, headers, job_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(studio.url, headers, job_id, wait=1)
        if job["state"] == "running" and job_row(studio, job_id)["worker"]:
            return job
        assert job["state"] == "queued", job
    raise AssertionError(f"job {job_id} did not start: {studio.logs()}")


def worker_named(studio: Studio, name: str):
    return next(w for w in studio.workers if w.log_path.name == f"worker-{name}.log")


# --- kill -9 ------------------------------------------------------------------------------------


def test_sigkill_of_a_worker_mid_job_reruns_it_on_another_worker(studio_factory):
    studio = studio_factory()
    alice = studio.user("alice")
    studio.start_api()
    studio.start_worker("w1")
    studio.start_worker("w2")
    job_id = slow_job(studio.url, alice)
    wait_running(studio, alice, job_id)
    first = job_row(studio, job_id)["worker"]
    worker_named(studio, first).kill()
    killed_at = time.monotonic()

    job = wait_state(studio.url, alice, job_id, timeout=90)
    assert job["state"] == "succeeded", (job, studio.logs())
    assert time.monotonic() - killed_at < 60
    row = job_row(studio, job_id)
    assert row["worker"] != first and row["attempts"] == 2
    assert job["results"][0]["width"] == 1800 * 4
    resp = requests.get(studio.url + job["results"][0]["url"], params={"format": "rgba"},
                        headers=alice, timeout=60)
    assert resp.status_code == 200 and len(resp.content) == (1800 * 4) ** 2 * 4


def test_a_job_that_kills_its_worker_twice_fails_with_a_clear_error(studio_factory):
    studio = studio_factory()
    alice = studio.user("alice")
    studio.start_api()
    studio.start_worker("w1")
    studio.start_worker("w2")
    job_id = slow_job(studio.url, alice, size=2200)
    wait_running(studio, alice, job_id)
    first = job_row(studio, job_id)["worker"]
    worker_named(studio, first).kill()
    deadline = time.monotonic() + 60
    while job_row(studio, job_id)["worker"] in (None, first) or (
        job_row(studio, job_id)["state"] != "running"
    ):
        assert time.monotonic() < deadline, studio.logs()
        time.sleep(0.2)
    second = job_row(studio, job_id)["worker"]
    worker_named(studio, second).kill()
    studio.start_worker("w3")

    job = wait_state(studio.url, alice, job_id, timeout=60)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "worker_lost"
    assert "stopped 2 times" in job["error"]["message"]
    fresh = post_job(studio.url, alice).json()["id"]
    assert wait_state(studio.url, alice, fresh)["state"] == "succeeded"


# --- cancel and progress across processes --------------------------------------------------------


def test_cancel_and_progress_reach_a_job_on_a_remote_worker(studio_factory):
    studio = studio_factory()
    alice = studio.user("alice")
    studio.start_api(workers=2)
    studio.start_worker("w1")
    job_id = slow_job(studio.url, alice, size=2200)
    wait_running(studio, alice, job_id)
    seen = []
    deadline = time.monotonic() + 30
    while len({(p["step"], p["stage"]) for p in seen}) < 2 and time.monotonic() < deadline:
        job = get_job(studio.url, alice, job_id, wait=5)
        seen.append(job["progress"])
    assert len({(p["step"], p["stage"]) for p in seen}) >= 2, seen

    asked = time.monotonic()
    resp = requests.delete(f"{studio.url}/v1/jobs/{job_id}", headers=alice, timeout=10)
    assert resp.status_code == 202
    job = wait_state(studio.url, alice, job_id, timeout=10)
    assert job["state"] == "canceled"
    assert time.monotonic() - asked < 2.5
    fresh = post_job(studio.url, alice).json()["id"]
    assert wait_state(studio.url, alice, fresh)["state"] == "succeeded"


def test_jobs_go_to_the_idle_worker_that_holds_their_model(studio_factory):
    studio = studio_factory()
    alice = studio.user("alice")
    studio.start_api()
    studio.start_worker("w1")
    first = post_job(studio.url, alice).json()["id"]
    assert wait_state(studio.url, alice, first)["state"] == "succeeded"
    studio.start_worker("w2")
    ids = []
    for _ in range(6):
        job_id = post_job(studio.url, alice).json()["id"]
        assert wait_state(studio.url, alice, job_id)["state"] == "succeeded"
        ids.append(job_id)
    runs = [job_row(studio, job_id)["worker"] for job_id in ids]
    assert runs == ["w1"] * 6, f"classic-lanczos jobs ran on {runs}; only w1 held the model"


# --- users --------------------------------------------------------------------------------------


def test_users_see_only_their_own_jobs_and_admins_see_and_cancel_all(studio_factory):
    studio = studio_factory()
    alice = studio.user("alice")
    bob = studio.user("bob")
    boss = studio.user("boss", role="admin")
    alice_second = {"Authorization": "Bearer " + studio.cli(
        "keys", "create", "--name", "alice-gimp", "--user", "alice").stdout.strip()}
    studio.start_api()
    studio.start_worker("w1")
    done = post_job(studio.url, alice).json()["id"]
    assert wait_state(studio.url, alice, done)["state"] == "succeeded"
    slow = slow_job(studio.url, alice, size=2200)

    for path in (f"/v1/jobs/{done}", f"/v1/jobs/{done}/results/0"):
        resp = requests.get(studio.url + path, headers=bob, timeout=10)
        assert resp.status_code == 404, resp.text
        assert resp.json()["code"] == "job_not_found"
    assert requests.delete(f"{studio.url}/v1/jobs/{slow}", headers=bob,
                           timeout=10).status_code == 404
    assert requests.get(f"{studio.url}/v1/jobs", headers=bob, timeout=10).json() == []
    assert requests.get(f"{studio.url}/v1/jobs/{done}/results/0", headers=alice_second,
                        timeout=10).status_code == 200, "all of a user's keys see their jobs"
    ids = {j["id"] for j in requests.get(f"{studio.url}/v1/jobs", headers=boss,
                                         timeout=10).json()}
    assert {done, slow} <= ids
    assert requests.delete(f"{studio.url}/v1/jobs/{slow}", headers=boss,
                           timeout=10).status_code == 202
    assert wait_state(studio.url, alice, slow)["state"] == "canceled"
    resp = requests.get(f"{studio.url}/v1/jobs", timeout=10)
    assert resp.status_code == 401, "studio mode always needs a key, even on loopback"


def test_limits_refuse_with_429_naming_the_limit_and_its_reset(studio_factory):
    studio = studio_factory()
    bob = studio.user("bob")
    carol = studio.user("carol")
    studio.cli("users", "limit", "bob", "--max-queued", "2")
    studio.cli("users", "limit", "carol", "--daily-units", "1.5")
    assert "max-queued     2" in studio.cli("users", "list").stdout
    studio.start_api()  # no worker yet: bob's jobs stay queued
    for _ in range(2):
        assert post_job(studio.url, bob).status_code == 202
    resp = post_job(studio.url, bob)
    assert resp.status_code == 429
    assert resp.json()["code"] == "limit_max_queued"
    assert "max-queued is 2" in resp.json()["message"]
    assert int(resp.headers["Retry-After"]) > 0

    assert post_job(studio.url, carol).status_code == 202  # upscale costs 1 unit
    resp = post_job(studio.url, carol)
    assert resp.status_code == 429
    body = resp.json()
    assert body["code"] == "limit_daily_units"
    assert "daily-units resets at" in body["message"] and "UTC" in body["message"]
    assert 0 < int(resp.headers["Retry-After"]) <= 86400


# --- fair queue, many users, many processes ------------------------------------------------------


def test_forty_jobs_from_four_users_all_complete_in_a_fair_order(studio_factory):
    studio = studio_factory()
    users = {name: studio.user(name) for name in ("anna", "ben", "cleo", "dev")}
    studio.start_api(workers=2)
    image = gradient_png(600)

    def submit(name):
        resp = post_job(studio.url, users[name], image=image, scale=4)
        assert resp.status_code == 202, resp.text
        return name, resp.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        anna = [job for _, job in pool.map(submit, ["anna"] * 20)]
        assert all(get_job(studio.url, users["anna"], j)["state"] == "queued" for j in anna)
        others = list(pool.map(submit, ["ben", "cleo", "dev"]))
        positions = [get_job(studio.url, users[n], j)["queue_position"] for n, j in others]
        assert sorted(positions) == [1, 2, 3], "each newcomer goes right after anna's first"
        workers = [studio.start_worker(name, wait=False) for name in ("w1", "w2")]
        others += list(pool.map(submit, ["ben", "cleo", "dev"] * 5 + ["ben", "cleo"]))
    for worker in workers:
        studio.wait_worker_ready(worker)

    jobs = [("anna", j) for j in anna] + others
    for name, job_id in jobs:
        job = wait_state(studio.url, users[name], job_id, timeout=180)
        assert job["state"] == "succeeded", job
    started = started_times(studio)
    anna_starts = sorted(started[j][1] for j in anna)
    for name in ("ben", "cleo", "dev"):
        first = min(started[j][1] for n, j in others if n == name)
        later = sum(t > first for t in anna_starts)
        assert later >= 15, f"{name}'s first job started before only {later} of anna's 20"
    assert len({started[j][2] for _, j in jobs}) == 2, "both workers ran jobs"


def test_a_redis_restart_mid_run_loses_no_job(tmp_path, postgres):
    broker = Redis(tmp_path / "redis").start()
    studio = Studio(tmp_path / "studio", postgres, broker)
    try:
        alice = studio.user("alice")
        bob = studio.user("bob")
        studio.start_api()
        studio.start_worker("w1")
        studio.start_worker("w2")
        image = gradient_png(600)
        ids = [(h, post_job(studio.url, h, image=image, scale=4).json()["id"])
               for h in (alice, bob) * 5]
        time.sleep(1.0)
        broker.stop()
        ids += [(alice, post_job(studio.url, alice).json()["id"])]  # accepted while it is down
        time.sleep(2.0)
        broker.start()
        ids += [(bob, post_job(studio.url, bob).json()["id"])]
        for headers, job_id in ids:
            job = wait_state(studio.url, headers, job_id, timeout=120)
            assert job["state"] == "succeeded", (job, studio.logs())
    finally:
        studio.close()
        broker.cleanup()


def test_a_raw_body_job_runs_through_the_gunicorn_api_on_a_worker(studio_factory):
    """POST /v1/jobs/raw reads gunicorn's input stream (no readinto) into the shared data
    folder; the worker in another process runs the job from those files."""
    from tests.helpers import box_mask, noise_image

    studio = studio_factory()
    alice = studio.user("alice")
    studio.start_api(workers=1)
    studio.start_worker("w1")
    image, mask = noise_image(300, 200), box_mask(300, 200, (50, 50, 90, 90))
    raw = {"image": {"width": 300, "height": 200}, "mask": {"width": 300, "height": 200}}
    resp = requests.post(
        studio.url + "/v1/jobs/raw", data=image.tobytes() + mask.tobytes(), timeout=60,
        headers={**alice, "Content-Type": "application/octet-stream",
                 "Aiedit-Request": json.dumps({"operation": "inpaint",
                                               "model": "classic-telea", "raw": raw})},
    )
    assert resp.status_code == 202, resp.text
    job = wait_state(studio.url, alice, resp.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    out = requests.get(studio.url + job["results"][0]["url"], params={"format": "rgba"},
                       headers=alice, timeout=30).content
    out = np.frombuffer(out, np.uint8).reshape(200, 300, 4)
    assert np.array_equal(out[mask == 0], image[mask == 0])
