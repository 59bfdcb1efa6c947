"""Shared fixtures: an app with its test client, and real `aiedit serve` processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from aiedit.app import create_app, services_of  # noqa: E402
from aiedit.config import Config  # noqa: E402
from tests.fixtures.tiny_server import tiny_server  # noqa: E402, F401 - shared fixture
from tests.helpers import LiveServer  # noqa: E402

# --- in-process app ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """One weights folder per test session, so bundled models are converted once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def config(tmp_path, models_dir) -> Config:
    return Config(data_dir=tmp_path / "data", testing=True, models_dir=str(models_dir))


@pytest.fixture
def app(config):
    app = create_app(config)
    yield app
    services_of(app).stop()


@pytest.fixture
def client(app):
    return app.test_client()


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
