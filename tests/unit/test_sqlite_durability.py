"""Personal mode's SQLite database: every commit is on disk when it returns, as the inputs of an
acknowledged job and the result of a finished one are (see JobRunner.submit and
_store_outputs): a power cut cannot take back a job the client was told about. Only what a
crash may take back without harm skips the wait: a job's claim (a job found running, or still
queued, after a restart runs again) and its progress."""

from __future__ import annotations

import sys

from sqlalchemy import text

from aiedit.app import services_of
from aiedit.store.db import Database
from tests.helpers import noise_image, png_bytes, submit, wait_finished

FULL, NORMAL = 2, 1


def test_every_connection_commits_durably_in_wal_mode_but_the_undurable_ones(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'aiedit.sqlite3'}")
    try:
        db.migrate()
        for opened, synchronous in ((db.session, FULL), (db.connection, FULL),
                                    (lambda: db.session(durable=False), NORMAL),
                                    (lambda: db.connection(durable=False), NORMAL)):
            with opened() as handle:
                assert handle.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert handle.execute(text("PRAGMA synchronous")).scalar() == synchronous
        with db.connection(durable=False) as c:  # the same database file, seen at once
            c.execute(text("CREATE TABLE seen (n INTEGER)"))
            c.execute(text("INSERT INTO seen VALUES (7)"))
        with db.session() as s:
            assert s.execute(text("SELECT n FROM seen")).scalar() == 7
    finally:
        db.dispose()


def test_only_the_claim_and_progress_skip_the_disk_wait(app, client, monkeypatch):
    db = services_of(app).db
    opened = []  # (the runner's method that opened it, durable)
    real_session, real_connection = db.session, db.connection

    def session(durable=True):
        opened.append((sys._getframe(1).f_code.co_name, durable))
        return real_session(durable)

    def connection(durable=True):
        opened.append((sys._getframe(1).f_code.co_name, durable))
        return real_connection(durable)

    monkeypatch.setattr(db, "session", session)
    monkeypatch.setattr(db, "connection", connection)
    job = submit(client, "restore", {"image": png_bytes(noise_image(64, 64))},
                 model="classic-denoise").get_json()
    assert wait_finished(client, job["id"])["state"] == "succeeded"
    undurable = {caller for caller, durable in opened if not durable}
    assert "_claim" in undurable
    assert undurable <= {"_claim", "write_progress"}
    assert ("_finish", True) in opened and ("submit", True) in opened
