"""Shared fixtures: an app with its test client, and real `aiedit serve` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from aiedit.app import create_app, services_of  # noqa: E402
from aiedit.config import Config  # noqa: E402
from tests.helpers import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AIEDIT_BIN = Path(sys.executable).with_name("aiedit")


# --- in-process app ---------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(data_dir=tmp_path / "data", testing=True)


@pytest.fixture
def app(config):
    app = create_app(config)
    yield app
    services_of(app).stop()


@pytest.fixture
def client(app):
    return app.test_client()


# --- real server processes --------------------------------------------------------------------


class LiveServer:
    """`aiedit serve` in a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, data_dir: Path, env: dict | None = None, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(AIEDIT_BIN),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"aiedit serve exited with {self.proc.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            try:
                if requests.get(self.url + "/v1/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(
            "aiedit serve did not answer /v1/health in time:\n"
            + self.log_path.read_text(errors="replace")[-3000:]
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


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
