"""The migrations build the schema the models describe, and carry existing rows forward."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from aiedit.store.db import Database
from aiedit.store.models import Base


def _alembic(connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option(
        "script_location", str(resources.files("aiedit.store").joinpath("migrations"))
    )
    cfg.attributes["connection"] = connection
    return cfg


def test_migrated_schema_matches_the_models(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    db.migrate()
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrade_from_0001_keeps_jobs_and_adds_the_request_hash(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    with engine.begin() as connection:
        command.upgrade(_alembic(connection), "0001")
        connection.execute(
            text(
                "INSERT INTO jobs (id, owner, operation, model, device, params, region, inputs, "
                "state, progress, results, cost, attempts, cancel_requested, created_at, "
                "expires_at) VALUES ('abc', 'local', 'restore', 'm', 'cpu', '{}', '{}', '{}', "
                "'succeeded', '{}', '[]', 0, 1, 0, '2026-01-01 00:00:00', '2026-01-02 00:00:00')"
            )
        )
    db = Database(str(engine.url))
    db.migrate()
    columns = {c["name"] for c in inspect(db.engine).get_columns("jobs")}
    assert "request_hash" in columns
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT state FROM jobs WHERE id='abc'")).scalar() == (
            "succeeded"
        )
    with db.engine.begin() as connection:
        command.downgrade(_alembic(connection), "0001")
    assert "request_hash" not in {c["name"] for c in inspect(db.engine).get_columns("jobs")}


def test_head_revision_read_from_the_scripts_is_alembics_head():
    from alembic.script import ScriptDirectory

    from aiedit.store.db import head_revision

    with create_engine("sqlite://").connect() as connection:
        script = ScriptDirectory.from_config(_alembic(connection))
    assert head_revision() == script.get_current_head()


def test_a_current_database_starts_without_alembic(tmp_path):
    """Start-up speed: once the database is at head, migrate() neither imports Alembic nor
    touches the schema; an older database still gets upgraded (test above)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    Database(url).migrate()
    assert Database(url).is_current()
    check = (
        "import sys; from aiedit.store.db import Database; "
        f"Database({url!r}).migrate(); "
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    old = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    with create_engine(old).begin() as connection:
        command.upgrade(_alembic(connection), "0001")
    assert not Database(old).is_current()
    out = subprocess.run([sys.executable, "-c", check.replace(url, old)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"  # behind head: Alembic runs and brings it up
    assert Database(old).is_current()
