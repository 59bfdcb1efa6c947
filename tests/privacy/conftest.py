"""Privacy fixtures: an app on SQLite or on PostgreSQL (each test that touches the database runs
on both), whose runner reads the time from a clock the test moves (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiedit.app import create_app
from aiedit.auth.keys import create_key
from aiedit.auth.users import create_user
from aiedit.config import Config
from aiedit.services import Services


class Clock:
    """The time the runner sees: starts at a fixed moment, moves only when told."""

    def __init__(self):
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A database URL ("" for the data dir's SQLite file) and its kind."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("postgres").database()


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def make_privacy_app(data_dir, database, clock, models_dir):
    """Build the app (personal mode unless told) on the test's database and clock."""
    apps = []

    def build(**settings):
        config = Config(data_dir=data_dir, testing=True, models_dir=str(models_dir),
                        database_url=database, **settings)
        app = create_app(config, services=Services.build(config, clock=clock))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["aiedit"].stop()


@pytest.fixture
def papp(make_privacy_app):
    return make_privacy_app()


@pytest.fixture
def services(papp) -> Services:
    return papp.extensions["aiedit"]


def user_with_key(services: Services, name: str, role: str = "member") -> tuple[dict, str]:
    """A user and one key of theirs: (the Authorization header, the key id)."""
    create_user(services.db, name, role)
    row, key = create_key(services.db, f"{name}-laptop", user=name)
    return {"Authorization": f"Bearer {key}"}, row.id
