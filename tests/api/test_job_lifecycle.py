"""Idempotency, listing, long-poll, progress, cancel and delete."""

import dataclasses
import threading
import time

import pytest

from aiedit.app import services_of
from aiedit.ops import base
from aiedit.ops.base import ImageOutput
from tests.helpers import noise_image, png_bytes, submit, wait_finished

IMAGE = png_bytes(noise_image(16, 16))


@pytest.fixture
def slow_restore(monkeypatch):
    """Make `restore` take 50 steps of 0.05 s, so tests can watch and cancel it."""
    release = threading.Event()

    def run(ctx):
        for step in range(50):
            ctx.progress(step, 50, "testing")
            release.wait(0.05)
        return [ImageOutput(ctx.inputs["image"].copy())]

    registry = base.registry()
    monkeypatch.setitem(registry, "restore", dataclasses.replace(registry["restore"], run=run))
    return release


def test_idempotency_key_returns_the_same_job(client):
    headers = {"Idempotency-Key": "retry-123"}
    first = submit(client, "upscale", {"image": IMAGE}, headers=headers).get_json()
    second = submit(client, "upscale", {"image": IMAGE}, headers=headers).get_json()
    assert first["id"] == second["id"]
    assert len(client.get("/v1/jobs").get_json()) == 1


def test_jobs_are_listed_newest_first_and_paginated(client):
    ids = [submit(client, "upscale", {"image": IMAGE}).get_json()["id"] for _ in range(3)]
    resp = client.get("/v1/jobs?page=1&page_size=2")
    listed = [job["id"] for job in resp.get_json()]
    assert listed == ids[::-1][:2]
    assert '"total": 3' in resp.headers["X-Pagination"]
    assert [j["id"] for j in client.get("/v1/jobs?page=2&page_size=2").get_json()] == ids[:1]


def test_progress_queue_position_and_long_poll(client, slow_restore):
    first = submit(client, "restore", {"image": IMAGE}).get_json()
    second = submit(client, "restore", {"image": IMAGE}).get_json()
    assert client.get(f"/v1/jobs/{second['id']}").get_json()["queue_position"] >= 1
    started = time.monotonic()
    job = client.get(f"/v1/jobs/{first['id']}?wait=10").get_json()
    assert time.monotonic() - started < 5, "long-poll returns on change, not at the timeout"
    deadline = time.monotonic() + 10
    while job["progress"]["step"] < 3 and time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{first['id']}?wait=2").get_json()
    assert job["state"] == "running"
    assert job["progress"]["stage"] == "testing"
    assert job["progress"]["total"] == 50
    assert 0 < job["progress"]["fraction"] < 1
    assert job["progress"]["eta_s"] is not None
    assert job["queue_position"] == 0
    slow_restore.set()
    assert wait_finished(client, first["id"])["state"] == "succeeded"
    assert wait_finished(client, second["id"])["state"] == "succeeded"


def test_cancel_running_job_stops_it_and_frees_the_worker(app, client, slow_restore):
    running = submit(client, "restore", {"image": IMAGE}).get_json()
    queued = submit(client, "restore", {"image": IMAGE}).get_json()
    job = running
    while job["state"] != "running":
        job = client.get(f"/v1/jobs/{running['id']}?wait=2").get_json()
    assert client.delete(f"/v1/jobs/{queued['id']}").get_json()["state"] == "canceled"
    assert client.delete(f"/v1/jobs/{running['id']}").status_code == 202
    job = wait_finished(client, running["id"], timeout=10)
    assert job["state"] == "canceled"
    assert job["progress"]["step"] < 49
    slow_restore.set()
    after = submit(client, "upscale", {"image": IMAGE}).get_json()
    assert wait_finished(client, after["id"])["state"] == "succeeded"


def test_delete_finished_job_removes_its_files(app, client):
    job_id = submit(client, "upscale", {"image": IMAGE}).get_json()["id"]
    wait_finished(client, job_id)
    job_dir = services_of(app).blobs.job_dir(job_id)
    assert job_dir.exists()
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not job_dir.exists()
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_failed_job_reports_a_reason(client, monkeypatch):
    def run(ctx):
        raise base.OperationError("model_not_available", "get it with `aiedit models pull x`")

    registry = base.registry()
    monkeypatch.setitem(registry, "restore", dataclasses.replace(registry["restore"], run=run))
    job = wait_finished(client, submit(client, "restore", {"image": IMAGE}).get_json()["id"])
    assert job["state"] == "failed"
    assert job["error"] == {
        "code": "model_not_available",
        "message": "get it with `aiedit models pull x`",
    }


def test_expired_jobs_are_swept(app, client):
    from datetime import timedelta

    services = services_of(app)
    job_id = submit(client, "upscale", {"image": IMAGE}).get_json()["id"]
    wait_finished(client, job_id)
    services.runner.retention = timedelta(0)
    from aiedit.store.db import utcnow
    from aiedit.store.models import Job

    with services.db.session() as s:
        s.get(Job, job_id).expires_at = utcnow() - timedelta(seconds=1)
    assert services.runner.expire() == 1
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not services.blobs.job_dir(job_id).exists()


def test_cancel_only_keeps_a_job_that_already_finished(client):
    job_id = submit(client, "upscale", {"image": IMAGE}, model="classic-lanczos").get_json()["id"]
    wait_finished(client, job_id)
    resp = client.delete(f"/v1/jobs/{job_id}?cancel_only=true")
    assert resp.status_code == 202
    assert resp.get_json()["state"] == "succeeded"
    assert client.get(f"/v1/jobs/{job_id}/results/0").status_code == 200
