"""Personal mode's SQLite database: every commit is on disk when it returns, as the inputs of an
acknowledged job and the result of a finished one are (see JobRunner.submit and
_store_outputs): a power cut cannot take back a job the client was told about."""

from __future__ import annotations

from sqlalchemy import text

from aiedit.store.db import Database


def test_every_connection_commits_durably_in_wal_mode(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'aiedit.sqlite3'}")
    try:
        db.migrate()
        for opened in (db.session, db.connection):  # both kinds of pooled connection
            with opened() as handle:
                assert handle.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert handle.execute(text("PRAGMA synchronous")).scalar() == 2, "FULL"
    finally:
        db.dispose()
