"""Uploads, results, previews and the job's row are gone after the retention period, counted
from when the job finished, on a clock the test moves; the bytes leave the disk (the database
file and its write-ahead log included), not only the rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import numpy as np

from aiedit.store.db import as_utc
from aiedit.store.models import Job
from tests.helpers import box_mask, noise_image, png_bytes, submit, wait_finished
from tests.privacy.scan import files_containing, rows_containing


def _inpaint(client, prompt: str, seed: int = 0):
    image = png_bytes(noise_image(64, 48, seed=seed))
    mask = png_bytes(box_mask(64, 48, (16, 16, 40, 32)))
    resp = submit(client, "inpaint", {"image": image, "mask": mask}, model="classic-telea",
                  params={"prompt": prompt})
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["id"], image


def _traces(services, job_id: str, prompt: str, upload: bytes, result: bytes):
    """Where the job's prompt, upload and result still are: files and table cells."""
    needles = [prompt.encode(), upload[len(upload) // 2:][:64], result[1000:1064]]
    files = files_containing(services.config.data_dir, needles)
    rows = rows_containing(services.config.database, [prompt, job_id])
    return files, rows


def test_files_and_rows_are_gone_after_the_retention_period(papp, services, clock):
    client = papp.test_client()
    prompt = f"retention-probe-{uuid.uuid4().hex}"
    job_id, upload = _inpaint(client, prompt)
    job = wait_finished(client, job_id)
    assert job["state"] == "succeeded"
    finished = datetime.fromisoformat(job["finished_at"])
    assert finished == clock.now
    assert datetime.fromisoformat(job["expires_at"]) == clock.now + timedelta(hours=24)
    with services.db.session() as s:
        assert as_utc(s.get(Job, job_id).expires_at) == clock.now + timedelta(hours=24)
    result = client.get(f"/v1/jobs/{job_id}/results/0?format=rgba").data
    assert len(result) == 64 * 48 * 4
    services.runner.report_preview(job_id, 1, np.zeros((8, 8, 3), np.uint8))

    files, rows = _traces(services, job_id, prompt, upload, result)
    assert {n for _, n in files} >= {upload[len(upload) // 2:][:64], result[1000:1064]}
    assert rows, "the probe finds the job's row while it is retained"

    clock.advance(hours=23, minutes=59)
    assert services.sweep_once()
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200, "kept until it expires"

    clock.advance(minutes=2)
    assert services.sweep_once()
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not services.blobs.job_dir(job_id).exists()
    assert services.runner.preview(job_id) is None
    assert _traces(services, job_id, prompt, upload, result) == ([], [])


def test_the_sweep_interval_follows_a_short_retention(make_privacy_app):
    services = make_privacy_app(retention_hours=0.01).extensions["aiedit"]
    assert services.sweep_interval_s == 3.6


def test_hosted_servers_also_expire_jobs_still_queued(papp, services, clock):
    """A personal or studio server keeps a queued job's uploads until it has run; hosted mode
    promises the period from submission, so one still queued then is canceled and deleted."""
    services.queue.stop()  # nothing runs: the job stays queued
    client = papp.test_client()
    job_id, upload = _inpaint(client, "a patient lighthouse")
    clock.advance(hours=25)
    services.sweep_once()
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "queued", "not hosted"

    services.runner.expire_queued = True  # as Services.build sets it in hosted mode
    services.sweep_once()
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not services.blobs.job_dir(job_id).exists()
    assert files_containing(services.config.data_dir, [upload[len(upload) // 2:][:64]]) == []

