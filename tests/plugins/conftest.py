"""Fixtures shared by the plug-in tests (servers come from tests/conftest.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

AIEDIT = Path(sys.executable).with_name("aiedit")


@pytest.fixture
def unused_url():
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def create_key():
    """`create_key(data_dir)` makes an API key with `aiedit keys create` and returns it."""

    def create(data_dir: Path, name: str = "plugin-test") -> str:
        out = subprocess.run([str(AIEDIT), "keys", "create", "--name", name,
                              "--data-dir", str(data_dir)],
                             check=True, capture_output=True, text=True).stdout
        return out.strip().split()[-1]

    return create
