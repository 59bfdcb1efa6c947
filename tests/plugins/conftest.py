"""Fixtures for the plug-in tests: a live `aiedit serve` on 127.0.0.1 (own copy until a shared
one exists in tests/conftest.py)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIEDIT = Path(sys.executable).parent / "aiedit"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`aiedit serve` as a subprocess; can be stopped and started again on the same port and
    data directory (jobs survive in SQLite)."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = data_dir.parent / f"serve-{self.port}.log"

    def start(self, wait: bool = True) -> "LiveServer":
        env = dict(os.environ, AIEDIT_DATA_DIR=str(self.data_dir))
        self.proc = subprocess.Popen(
            [str(AIEDIT), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aiedit serve exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"aiedit serve did not answer in {timeout} s: {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def create_key(self, name: str = "plugin-test") -> str:
        out = subprocess.run([str(AIEDIT), "keys", "create", "--name", name,
                              "--data-dir", str(self.data_dir)],
                             check=True, capture_output=True, text=True).stdout
        return out.strip().split()[-1]


@pytest.fixture(scope="session")
def aiedit_server(tmp_path_factory):
    """A live server shared by the plug-in tests of one session."""
    server = LiveServer(tmp_path_factory.mktemp("aiedit-server") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path):
    """A live server of this test alone (for tests that stop it, or create keys)."""
    server = LiveServer(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def unused_url():
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"
