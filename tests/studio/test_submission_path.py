"""A studio submission's path to a worker, statement by statement: on a 2-core machine every
round trip and every statement an API process builds shows in the submit → start latency
(`make bench`), so the path reads only what it needs."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from sqlalchemy import event

from aiedit.app import create_app, services_of
from aiedit.auth.keys import create_key
from aiedit.auth.users import create_user, set_limits
from aiedit.config import Config
from aiedit.store.db import Database
from tests.helpers import box_mask, noise_image, png_bytes, submit

pytestmark = pytest.mark.studio

IMAGE = png_bytes(noise_image(16, 16))


@pytest.fixture
def studio_app(tmp_path, postgres, redis_server, models_dir):
    url = postgres.database()
    Database(url).migrate()
    broker = redis_server.url.rsplit("/", 1)[0] + "/14"
    redis.Redis.from_url(broker).flushdb()
    app = create_app(Config(mode="studio", data_dir=tmp_path / "data", database_url=url,
                            broker_url=broker, testing=True, models_dir=str(models_dir),
                            rate_limit_per_minute=0), start=False)
    yield app
    services_of(app).stop()


def _statements_of_this_thread(db):
    seen, me = [], threading.get_ident()

    def before(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == me:
            seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", before)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", before)


def _key(db, user: str) -> dict:
    create_user(db, user)
    return {"Authorization": f"Bearer {create_key(db, f'{user}-key', user=user)[1]}"}


def _round_trips_of_this_thread(monkeypatch):
    """What this thread sends the server, a string a round trip: every statement SQLAlchemy
    runs and every one sent around it (psycopg's cursors, both kinds, execute through here)."""
    import psycopg

    sent, values, me = [], [], threading.get_ident()
    execute = psycopg.Cursor.execute

    def spy(cursor, query, params=None, **kwargs):
        if threading.get_ident() == me:
            sent.append(" ".join(str(query).split()))
            values.append(params)
        return execute(cursor, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", spy)
    return sent, values


def test_a_submission_stores_and_routes_the_job_in_one_transaction_of_few_round_trips(
        studio_app, monkeypatch):
    db = services_of(studio_app).db
    headers = _key(db, "ada")
    sent, values = _round_trips_of_this_thread(monkeypatch)
    resp = submit(studio_app.test_client(), "upscale", {"image": IMAGE}, headers=headers,
                  model="classic-lanczos", params={"scale": 2})
    assert resp.status_code == 202, resp.get_json()
    until_insert = sent[:next(i for i, s in enumerate(sent) if s.startswith("INSERT INTO jobs"))]
    insert = sent[len(until_insert)]
    assert "FROM workers" in insert, "the INSERT hands back the worker queue (RETURNING)"
    assert not any("blocked_terms" in s for s in sent), "an upscale has no prompt to check"
    assert not any("FROM users" in s and "api_keys" not in s for s in sent), \
        "the user's limits came with the key"
    assert not any("FROM workers" in s for s in until_insert)
    assert len(until_insert) == 2, until_insert  # the key (with its user); locks and counts
    locks_and_counts = until_insert[1]
    assert locks_and_counts.count("pg_advisory_xact_lock") == 2  # the owner's, the queue's
    assert locks_and_counts.index("count(*)") > locks_and_counts.rindex("pg_advisory_xact_lock")
    assert values[1]["owner"] == "ada", "the owner's count, its name bound by the driver"


def test_limits_read_with_the_key_still_hold(studio_app):
    db = services_of(studio_app).db
    headers = _key(db, "bob")
    set_limits(db, "bob", max_queued=1)
    client = studio_app.test_client()
    first = submit(client, "upscale", {"image": IMAGE}, headers=headers,
                   model="classic-lanczos", params={"scale": 2})
    assert first.status_code == 202, first.get_json()
    second = submit(client, "upscale", {"image": IMAGE}, headers=headers,
                    model="classic-lanczos", params={"scale": 2})
    assert second.status_code == 429 and second.get_json()["code"] == "limit_max_queued"


def test_a_prompt_is_still_checked_against_the_block_list(studio_app):
    from aiedit.auth import blocklist

    db = services_of(studio_app).db
    headers = _key(db, "cy")
    blocklist.add_term(db, "forbidden")
    mask = png_bytes(box_mask(16, 16, (4, 4, 12, 12)))
    resp = submit(studio_app.test_client(), "inpaint", {"image": IMAGE, "mask": mask},
                  headers=headers, model="classic-telea", params={"prompt": "a forbidden thing"})
    assert resp.status_code == 422 and resp.get_json()["code"] == "prompt_refused"


def test_queue_positions_are_read_once_for_all_waiting_clients_until_the_queue_moves(
        studio_app, monkeypatch):
    """Every waiting client's long-poll asks for its job's queue position twice a second; one
    read of the queue serves them all until a job is queued, started, finished or canceled."""
    from aiedit.jobs import queue_celery

    monkeypatch.setattr(queue_celery, "ORDER_TTL_S", 60.0)  # only an event may renew it here
    db = services_of(studio_app).db
    headers = _key(db, "dee")
    client = studio_app.test_client()
    ids = []
    for _ in range(3):
        resp = submit(client, "upscale", {"image": IMAGE}, headers=headers,
                      model="classic-lanczos", params={"scale": 2})
        assert resp.status_code == 202, resp.get_json()
        ids.append(resp.get_json()["id"])
    assert resp.get_json()["queue_position"] == 2, "a job just queued is placed at once"

    def positions():
        return [client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()["queue_position"]
                for job_id in ids]

    seen, stop = _statements_of_this_thread(db)
    try:
        assert positions() + positions() + positions() == [0, 1, 2] * 3
    finally:
        stop()
    assert not [s for s in seen if "max(jobs_1.started_at)" in s], \
        "the order read for the last submission served every question"
    assert client.delete(f"/v1/jobs/{ids[0]}", headers=headers,
                         query_string={"cancel_only": "true"}).status_code in (200, 202)
    assert positions()[1:] == [0, 1], "a cancel moves the queue: positions are read again"


def test_a_queued_jobs_long_poll_reads_the_job_once_a_position_may_be_answered(studio_app):
    """A queued job's long-poll answers a new queue position after QUEUE_EVERY_S, so it reads
    the job then, not every POLL_INTERVAL_S before: the queue moving (another job canceled)
    costs one read of the job, and its own change would still wake it at once."""
    from aiedit.api import jobs

    db = services_of(studio_app).db
    headers = _key(db, "eve")
    client = studio_app.test_client()
    ids = [submit(client, "upscale", {"image": IMAGE}, headers=headers, model="classic-lanczos",
                  params={"scale": 2}).get_json()["id"] for _ in range(2)]

    def cancel_the_first():
        studio_app.test_client().delete(f"/v1/jobs/{ids[0]}", headers=headers,
                                         query_string={"cancel_only": "true"})

    seen, stop = _statements_of_this_thread(db)
    timer = threading.Timer(0.2, cancel_the_first)
    try:
        timer.start()
        started = time.monotonic()
        job = client.get(f"/v1/jobs/{ids[1]}", headers=headers,
                         query_string={"wait": 5}).get_json()
        took = time.monotonic() - started
    finally:
        timer.join()
        stop()
    assert job["state"] == "queued" and job["queue_position"] == 0, job
    assert jobs.QUEUE_EVERY_S <= took < jobs.QUEUE_EVERY_S + 0.5, took
    reads = [s for s in seen if s.startswith("SELECT jobs.id") and "WHERE jobs.id =" in s]
    assert len(reads) == 2, reads  # when the request came, and when the answer was due
