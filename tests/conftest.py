"""Shared fixtures: an app with its test client, and real `aiedit serve` processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from aiedit.app import create_app, services_of  # noqa: E402
from aiedit.config import Config  # noqa: E402
from tests import helpers  # noqa: E402
from tests.fixtures.tiny_server import tiny_server  # noqa: E402, F401 - shared fixture
from tests.helpers import LiveServer  # noqa: E402

# --- in-process app ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """One weights folder per test session, so bundled models are converted once."""
    return tmp_path_factory.mktemp("models")


def pytest_addoption(parser):
    parser.addoption(
        "--db", choices=("sqlite", "postgresql"), default="sqlite",
        help="database for the app and `aiedit serve` in tests: SQLite (default) or a "
        "PostgreSQL cluster the session starts (scripts/run-tests.sh runs the API and proof "
        "tests with both)",
    )


@pytest.fixture(scope="session")
def database_for(request):
    """data dir -> database URL for the selected --db (None: the default SQLite file)."""
    if request.config.getoption("--db") != "postgresql":
        yield lambda data_dir: None
        return
    postgres = request.getfixturevalue("postgres")
    urls: dict[str, str] = {}

    def url(data_dir) -> str:
        key = str(Path(data_dir).resolve())
        if key not in urls:
            urls[key] = postgres.database()
        return urls[key]

    helpers.DATABASE_FOR = url
    yield url
    helpers.DATABASE_FOR = None


@pytest.fixture(autouse=True, scope="session")
def _select_database(request):
    if request.config.getoption("--db") == "postgresql":
        request.getfixturevalue("database_for")


@pytest.fixture
def config(tmp_path, models_dir, database_for) -> Config:
    data_dir = tmp_path / "data"
    return Config(data_dir=data_dir, testing=True, models_dir=str(models_dir),
                  database_url=database_for(data_dir) or "")


@pytest.fixture
def app(config):
    app = create_app(config)
    yield app
    services_of(app).stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_app(tmp_path):
    """Build apps with given settings (`make_app(host="0.0.0.0", ...)`); all stopped after."""
    apps = []

    def build(**settings):
        app = create_app(Config(data_dir=tmp_path / f"d{len(apps)}", testing=True, **settings))
        apps.append(app)
        return app

    yield build
    for app in apps:
        services_of(app).stop()


# --- PostgreSQL and Redis (studio mode; Debian packages, loopback, free ports) ------------------


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A PostgreSQL cluster for the session; `postgres.database()` gives a fresh database URL."""
    from tests.fixtures.services import Postgres

    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from tests.fixtures.services import Redis

    server = Redis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def local_stripe(tmp_path_factory):
    """localstripe (plus Checkout Sessions, tests/fixtures/stripe_server.py) on 127.0.0.1."""
    from tests.fixtures.local_stripe import LocalStripe

    server = LocalStripe(tmp_path_factory.mktemp("stripe")).start()
    yield server
    server.stop()


# --- real server processes --------------------------------------------------------------------


@pytest.fixture
def server_factory(tmp_path):
    """Start servers with `server_factory(data_dir=None, env=None)`; all are stopped after."""
    servers: list[LiveServer] = []

    def start(data_dir: Path | None = None, env: dict | None = None, port: int | None = None):
        server = LiveServer(data_dir or tmp_path / "data", env=env, port=port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One shared `aiedit serve` for tests that only need a running server."""
    server = LiveServer(tmp_path_factory.mktemp("live") / "data").start()
    yield server
    server.stop()
