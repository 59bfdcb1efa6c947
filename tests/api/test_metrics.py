"""GET /metrics: Prometheus text computed from the shared database at scrape time, for an admin
key or a key-less request from loopback only."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from aiedit.app import create_app, services_of
from aiedit.auth.keys import create_key
from aiedit.store.db import utcnow
from aiedit.store.models import Job
from tests.helpers import noise_image, png_bytes, submit, wait_finished

REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value}"""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(client, **kwargs) -> dict[tuple, float]:
    resp = client.get("/metrics", **kwargs)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/plain"
    return samples(resp.get_data(as_text=True))


def add_job(db, operation="upscale", model="classic-lanczos", state="succeeded", seconds=None,
            error=None, device="cpu", owner="local"):
    """A job row as another process (a worker) would have left it."""
    now = utcnow()
    started = now - timedelta(seconds=seconds) if seconds is not None else None
    job = Job(
        id=f"j{abs(hash((operation, model, state, seconds, now))):x}"[:32], owner=owner,
        operation=operation, model=model, device=device, params={}, region={}, inputs={},
        state=state, progress={}, error=error, results=[], cost=1.0, attempts=1,
        cancel_requested=False, created_at=now - timedelta(seconds=(seconds or 0) + 1),
        started_at=started, finished_at=now if started else None,
        expires_at=now + timedelta(hours=1),
    )
    with db.session() as s:
        s.add(job)
    return job


def test_a_finished_job_shows_in_counts_and_the_duration_histogram(client):
    resp = submit(client, "upscale", {"image": png_bytes(noise_image(32, 32))},
                  model="classic-lanczos", params={"scale": 2})
    job = wait_finished(client, resp.get_json()["id"])
    assert job["state"] == "succeeded"

    m = scrape(client)
    assert m[("aiedit_jobs", (("operation", "upscale"), ("state", "succeeded")))] == 1
    labels = (("model", "classic-lanczos"), ("operation", "upscale"))
    assert m[("aiedit_jobs_finished_total", (*labels, ("state", "succeeded")))] == 1
    assert m[("aiedit_job_duration_seconds_count", labels)] == 1
    assert m[("aiedit_job_duration_seconds_bucket", (("le", "+Inf"), *labels))] == 1
    assert 0 < m[("aiedit_job_duration_seconds_sum", labels)] < 60
    # the embedded worker of the cpu device, holding the model it just used
    assert m[("aiedit_workers", (("device", "auto"),))] == 1
    held = [k for k in m if k[0] == "aiedit_worker_model_loaded"]
    assert [dict(k[1])["model"] for k in held] == ["classic-lanczos"]


def finish_after(app, seconds: float, state="succeeded", error=None, **job) -> str:
    """A job that ran `seconds`, ended by the runner as a worker ends it."""
    row = add_job(services_of(app).db, state="running", seconds=seconds, **job)
    services_of(app).runner._finish(row.id, state, error=error)
    return row.id


def test_buckets_failures_and_queue_are_counted_by_the_database(app, client):
    db = services_of(app).db
    for seconds in (0.3, 7.0, 700.0):
        finish_after(app, seconds, operation="generate", model="sdxl-turbo")
    finish_after(app, 1, "failed", {"code": "out_of_memory", "message": "x"},
                 operation="generate", model="sdxl-turbo")
    finish_after(app, 1, "failed", {"code": "model_not_available", "message": "x"},
                 operation="inpaint", model="classic-telea")
    add_job(db, state="queued", device="cuda:1")
    add_job(db, state="queued", device="cuda:1")

    m = scrape(client)
    labels = (("model", "sdxl-turbo"), ("operation", "generate"))

    def bucket(le):
        return m[("aiedit_job_duration_seconds_bucket", (("le", le), *labels))]

    assert (bucket("0.25"), bucket("0.5"), bucket("5.0"), bucket("10.0")) == (0, 1, 1, 2)
    assert (bucket("600.0"), bucket("1800.0"), bucket("+Inf")) == (2, 3, 3)
    assert abs(m[("aiedit_job_duration_seconds_sum", labels)] - 707.3) < 0.5
    assert m[("aiedit_job_failures_total",
              (("code", "out_of_memory"), ("operation", "generate")))] == 1
    assert m[("aiedit_job_failures_total",
              (("code", "model_not_available"), ("operation", "inpaint")))] == 1
    assert m[("aiedit_jobs_finished_total", (*labels, ("state", "failed")))] == 1
    assert m[("aiedit_jobs", (("operation", "generate"), ("state", "failed")))] == 1
    assert m[("aiedit_queue_depth", (("device", "cuda:1"),))] == 2
    assert m[("aiedit_queue_oldest_wait_seconds", ())] >= 1


def test_counters_never_go_down_when_jobs_expire_or_are_deleted(app, client):
    runner = services_of(app).runner
    done = finish_after(app, 2.0, operation="restore", model="classic-denoise")
    queued = add_job(services_of(app).db, state="queued", operation="restore",
                     model="classic-denoise")
    runner.cancel(queued.id)  # canceled before it ran: counted, but no run time
    labels = (("model", "classic-denoise"), ("operation", "restore"))
    before = scrape(client)
    assert before[("aiedit_jobs_finished_total", (*labels, ("state", "canceled")))] == 1
    assert before[("aiedit_job_duration_seconds_count", labels)] == 1

    runner.delete(done)
    runner.delete(queued.id)
    after = scrape(client)
    assert not [k for k in after if k[0] == "aiedit_jobs" and ("operation", "restore") in k[1]]
    for name in ("aiedit_jobs_finished_total", "aiedit_job_duration_seconds_count",
                 "aiedit_job_duration_seconds_sum"):
        assert {k: v for k, v in after.items() if k[0] == name} == {
            k: v for k, v in before.items() if k[0] == name}


def test_every_process_reports_the_same_shared_state(app, client, config):
    """A second API process on the same database (another gunicorn worker) reports jobs it
    never saw: nothing is counted in process memory."""
    other = create_app(config, start=False)
    try:
        before = scrape(other.test_client())
        assert not [k for k in before if k[0] == "aiedit_jobs"]
        resp = submit(client, "upscale", {"image": png_bytes(noise_image(16, 16))},
                      model="classic-lanczos")
        wait_finished(client, resp.get_json()["id"])
        after = scrape(other.test_client())
        assert after[("aiedit_jobs", (("operation", "upscale"), ("state", "succeeded")))] == 1
    finally:
        services_of(other).stop()


def test_only_admins_or_loopback_without_a_key(app, client):
    assert client.get("/metrics", environ_base=REMOTE).status_code == 401  # remote, no key
    db = services_of(app).db
    _, admin = create_key(db, "ops", role="admin")
    _, user = create_key(db, "alice")

    scrape(client, headers=bearer(admin), environ_base=REMOTE)
    resp = client.get("/metrics", headers=bearer(user), environ_base=REMOTE)
    assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden"
    assert client.get("/metrics", headers=bearer(user)).status_code == 403  # even on loopback
    assert client.get("/metrics", headers=bearer(admin[:-3] + "xyz")).status_code == 401
    resp = client.get("/metrics", environ_base=REMOTE)
    assert resp.status_code == 401 and "admin key" in resp.get_json()["message"]
    scrape(client)  # loopback, no key


def test_loopback_access_can_be_turned_off(tmp_path, models_dir):
    from aiedit.config import Config

    config = Config(data_dir=tmp_path / "d", testing=True, models_dir=str(models_dir),
                    metrics_loopback=False)
    app = create_app(config, start=False)
    try:
        assert app.test_client().get("/metrics").status_code == 401
    finally:
        services_of(app).stop()


def test_metrics_are_not_in_the_json_api_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert not [p for p in paths if p.startswith(("/metrics", "/admin"))]
