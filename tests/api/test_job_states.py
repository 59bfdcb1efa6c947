"""Job state changes are conditional: a cancel and a finish that race cannot overwrite each
other; retention counts from when a job finished; the sweeper survives failures; a job that runs
too long is stopped with `timeout`; results are durable and a missing one answers 410."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event

from aiedit import services as services_module
from aiedit.app import create_app, services_of
from aiedit.jobs.runner import CANCELED, RUNNING, SUCCEEDED
from aiedit.ops import base
from aiedit.ops.base import ImageOutput
from aiedit.store.db import utcnow
from aiedit.store.models import Job
from tests.helpers import noise_image, png_bytes, submit, wait_finished

IMAGE = png_bytes(noise_image(16, 16))
UPSCALE = {"model": "classic-lanczos", "params": {"scale": 2}}


@pytest.fixture
def stopped_app(config):
    """An app whose workers do not run: the test drives the runner itself."""
    app = create_app(config, start=False)
    yield app
    services_of(app).stop()


def _queued_job(app) -> str:
    resp = submit(app.test_client(), "upscale", {"image": IMAGE}, **UPSCALE)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["id"]


def _job(app, job_id) -> Job:
    with services_of(app).db.session() as s:
        return s.get(Job, job_id)


def _interleave_before_update(db, action):
    """Run `action` (in another thread, to completion) just before this thread's next
    `UPDATE jobs` statement executes: the other side of a race wins the gap."""
    armed = {"thread": threading.get_ident()}

    def before(conn, cursor, statement, parameters, context, executemany):
        if armed.get("thread") == threading.get_ident() and statement.startswith("UPDATE jobs"):
            armed.clear()
            other = threading.Thread(target=action)
            other.start()
            other.join(30)

    engines = {db.engine, db.undurable().engine}  # a claim's UPDATE runs on the undurable one
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    return lambda: [event.remove(engine, "before_cursor_execute", before) for engine in engines]


def test_cancel_that_loses_the_race_to_a_finish_does_not_flip_the_job(stopped_app):
    runner = services_of(stopped_app).runner
    job_id = _queued_job(stopped_app)
    undo = _interleave_before_update(runner.db, lambda: runner.run(job_id))
    try:
        state = runner.cancel(job_id)  # read while queued; the job runs and finishes meanwhile
    finally:
        undo()
    job = _job(stopped_app, job_id)
    assert job.state == SUCCEEDED and state == SUCCEEDED
    assert len(job.results) == 1
    assert services_of(stopped_app).blobs.path(job_id, job.results[0]["blob"]).is_file()


def test_a_worker_starting_a_job_canceled_meanwhile_does_not_resurrect_it(stopped_app):
    runner = services_of(stopped_app).runner
    job_id = _queued_job(stopped_app)
    undo = _interleave_before_update(runner.db, lambda: runner.cancel(job_id))
    try:
        runner.run(job_id)
    finally:
        undo()
    job = _job(stopped_app, job_id)
    assert job.state == CANCELED
    assert job.started_at is None and job.attempts == 0, "the canceled job never ran"
    assert job.results == []
    assert not list(services_of(stopped_app).blobs.job_dir(job_id).glob("result-*"))


def test_a_finish_after_a_cancel_of_the_queued_job_changes_nothing(stopped_app):
    runner = services_of(stopped_app).runner
    job_id = _queued_job(stopped_app)
    assert runner.cancel(job_id) == CANCELED
    runner._finish(job_id, SUCCEEDED, results=[{"index": 0, "blob": "result-0.npy"}])
    job = _job(stopped_app, job_id)
    assert (job.state, job.results) == (CANCELED, [])


def test_cancel_of_a_finished_job_keeps_it_succeeded(stopped_app):
    runner = services_of(stopped_app).runner
    job_id = _queued_job(stopped_app)
    runner.run(job_id)
    assert runner.cancel(job_id) == SUCCEEDED
    job = _job(stopped_app, job_id)
    assert job.state == SUCCEEDED and not job.cancel_requested and len(job.results) == 1


def test_expiry_counts_from_when_the_job_finished(stopped_app):
    services = services_of(stopped_app)
    services.runner.retention = timedelta(hours=2)
    job_id = _queued_job(stopped_app)
    with services.db.session() as s:  # it waited in the queue for three hours
        job = s.get(Job, job_id)
        job.created_at = job.created_at - timedelta(hours=3)
        job.expires_at = job.expires_at - timedelta(hours=3)
    assert services.runner.expire() == 0, "a queued job is never swept"
    services.runner.run(job_id)
    job = _job(stopped_app, job_id)
    finished = job.finished_at if job.finished_at.tzinfo else job.finished_at.replace(
        tzinfo=utcnow().tzinfo
    )
    expires = job.expires_at if job.expires_at.tzinfo else job.expires_at.replace(
        tzinfo=finished.tzinfo
    )
    assert expires - finished == timedelta(hours=2)
    assert services.runner.expire() == 0, "its results stay for the full retention"
    assert stopped_app.test_client().get(f"/v1/jobs/{job_id}/results/0").status_code == 200


def test_sweeper_survives_a_failure_and_sweeps_orphans_while_running(app, monkeypatch):
    services = services_of(app)
    calls = []
    real_expire = services.runner.expire

    def flaky_expire():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return real_expire()

    monkeypatch.setattr(services.runner, "expire", flaky_expire)
    monkeypatch.setattr(services_module, "SWEEP_INTERVAL_S", 0.05)
    orphan = services.blobs.job_dir("0123456789abcdef0123456789abcdef")
    orphan.mkdir(parents=True)
    (orphan / "image.png").write_bytes(b"left behind")
    old = time.time() - 3600
    os.utime(orphan / "image.png", (old, old))
    os.utime(orphan, (old, old))
    young = services.blobs.job_dir("fedcba9876543210fedcba9876543210")
    young.mkdir()
    (young / "image.png").write_bytes(b"a submission storing its inputs")

    services._stop_sweeper.set()  # restart the sweeper with the short interval
    time.sleep(0.1)
    services._stop_sweeper = threading.Event()
    threading.Thread(target=services._sweep, daemon=True).start()
    deadline = time.monotonic() + 10
    while (len(calls) < 3 or orphan.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(calls) >= 3, "the sweeper went on after the failure"
    assert not orphan.exists(), "an old folder without a job was removed by a periodic sweep"
    assert young.exists(), "a fresh folder (a submission in progress) was left alone"


def test_a_job_running_past_the_time_limit_fails_with_timeout(app, client, monkeypatch):
    services_of(app).runner.job_timeout_s = 0.3

    def run(ctx):
        for step in range(1000):
            ctx.progress(step, 1000, "diffusing")
            time.sleep(0.01)
        return [ImageOutput(ctx.inputs["image"].copy())]

    registry = base.registry()
    monkeypatch.setitem(registry, "restore", dataclasses.replace(registry["restore"], run=run))
    started = time.monotonic()
    job = wait_finished(client, submit(client, "restore", {"image": IMAGE}).get_json()["id"])
    assert job["state"] == "failed"
    assert job["error"]["code"] == "timeout"
    assert "AIEDIT_JOB_TIMEOUT_S" in job["error"]["message"]
    assert job["progress"]["step"] < 200
    assert time.monotonic() - started < 10


def test_results_are_fsynced_before_they_appear(app, client, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    job = wait_finished(client, submit(client, "upscale", {"image": IMAGE}, **UPSCALE)
                        .get_json()["id"])
    assert job["state"] == "succeeded"
    assert any("/.tmp-" in path for path in synced), "the result file was fsynced before rename"
    assert any(path.endswith(job["id"]) for path in synced), "and the folder after the rename"


def test_inputs_are_on_disk_before_the_202(app, client, monkeypatch):
    """An acknowledged job keeps its inputs through a crash: each input file is fsynced, and its
    folder after, all before the answer (while the job may already run: a crash before then
    leaves a file shorter than the row says, which the next start removes with its job)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    resp = submit(client, "upscale", {"image": IMAGE}, **UPSCALE)
    assert resp.status_code == 202
    answered = list(events)
    job_id = resp.get_json()["id"]
    synced = [i for i, e in enumerate(answered)
              if e[0] == "fsync" and os.path.basename(e[1]).startswith("image.")
              and os.path.dirname(e[1]).endswith(job_id)]
    assert synced, answered
    assert any(e[0] == "fsync" and e[1].endswith(job_id) for e in answered[synced[0]:]), (
        "and its folder after it"
    )
    wait_finished(client, job_id)


def test_a_start_removes_a_queued_job_whose_inputs_a_crash_cut_short(config):
    """The inputs reach the disk while a job starts and before its 202: a crash in between can
    leave a queued row with a short file. That job was never acknowledged (its client retries,
    with the same Idempotency-Key too): the next start removes it instead of running it."""
    app = create_app(config, start=False)
    whole = _queued_job(app)
    cut = _queued_job(app)
    services = services_of(app)
    image = services.blobs.path(cut, _job(app, cut).inputs["image"]["blob"])
    image.write_bytes(image.read_bytes()[: len(IMAGE) // 2])
    services.stop()

    app = create_app(config)
    try:
        client = app.test_client()
        assert client.get(f"/v1/jobs/{cut}").status_code == 404
        assert not services_of(app).blobs.job_dir(cut).exists()
        assert wait_finished(client, whole)["state"] == SUCCEEDED
    finally:
        services_of(app).stop()


def test_a_result_whose_file_is_gone_answers_410(app, client):
    job = wait_finished(client, submit(client, "upscale", {"image": IMAGE}, **UPSCALE)
                        .get_json()["id"])
    services_of(app).blobs.delete_results(job["id"])
    for fmt in ("png", "rgba", "webp"):
        resp = client.get(f"/v1/jobs/{job['id']}/results/0?format={fmt}")
        assert resp.status_code == 410, fmt
        assert resp.get_json()["code"] == "result_gone"


def test_webp_beyond_its_size_limit_is_refused_with_422(app, client):
    strip = png_bytes(noise_image(8192, 1))  # upscaled ×2: 16384 wide, more than WebP holds
    job = wait_finished(client, submit(client, "upscale", {"image": strip}, **UPSCALE)
                        .get_json()["id"])
    assert job["results"][0]["width"] == 16384
    resp = client.get(f"/v1/jobs/{job['id']}/results/0?format=webp")
    assert resp.status_code == 422
    assert resp.get_json()["code"] == "format_not_available"
    assert "16383" in resp.get_json()["message"]
    assert client.get(f"/v1/jobs/{job['id']}/results/0?format=png").status_code == 200


def test_running_state_is_only_left_through_the_runner(stopped_app):
    runner = services_of(stopped_app).runner
    job_id = _queued_job(stopped_app)
    assert runner._start(job_id).state == RUNNING
    assert runner._start(job_id) is None, "a running job cannot be started twice"


def test_a_ticket_for_the_only_queued_job_claims_it_without_reading_the_queue(stopped_app):
    """Studio tickets name the job they were sent for: alone in the queue, it is the job fair
    order would pick, claimed in one statement."""
    runner = services_of(stopped_app).runner
    job_id = _queued_job(stopped_app)
    reads = []
    assert runner.run_next(lambda: reads.append(1) or [job_id], alone=job_id) == job_id
    assert reads == [], "the queue was not read"
    assert _job(stopped_app, job_id).state == SUCCEEDED


def test_a_ticket_for_a_job_behind_others_takes_the_fair_turn(stopped_app):
    """The job a ticket names is a hint: with others queued, fair order decides."""
    runner = services_of(stopped_app).runner
    first, second = _queued_job(stopped_app), _queued_job(stopped_app)
    assert runner.run_next(lambda: [first, second], alone=second) == first
    assert _job(stopped_app, first).state == SUCCEEDED
    assert _job(stopped_app, second).state == "queued"


def test_inputs_that_cannot_reach_the_disk_leave_no_job_to_run(stopped_app, monkeypatch):
    """The inputs are synced after the job is queued: if that fails the client gets 507, and
    the job it was not given is canceled instead of running on inputs a crash could cut."""
    import errno

    real_fsync = os.fsync

    def failing(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith("image."):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    resp = submit(stopped_app.test_client(), "upscale", {"image": IMAGE}, **UPSCALE)
    assert resp.status_code == 507, resp.get_json()
    assert resp.get_json()["code"] == "insufficient_storage"
    with services_of(stopped_app).db.session() as s:
        states = [job.state for job in s.query(Job)]
    assert states in ([], [CANCELED]), states
