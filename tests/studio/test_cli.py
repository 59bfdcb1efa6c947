"""Studio commands refuse clearly when something they need is missing."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import AIEDIT_BIN

pytestmark = pytest.mark.studio


def aiedit(*args, env):
    return subprocess.run([str(AIEDIT_BIN), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_studio_needs_its_database_and_broker_and_an_upgraded_schema(tmp_path, postgres,
                                                                    redis_server):
    base = {"AIEDIT_MODE": "studio", "AIEDIT_DATA_DIR": str(tmp_path / "data")}
    result = aiedit("serve", "--port", "0", env=base)
    assert result.returncode != 0
    assert "studio mode needs AIEDIT_DATABASE_URL and AIEDIT_BROKER_URL" in result.stderr

    env = {**base, "AIEDIT_DATABASE_URL": postgres.database(),
           "AIEDIT_BROKER_URL": redis_server.url}
    for args in (("serve",), ("worker", "--device", "cpu"), ("users", "list")):
        result = aiedit(*args, env=env)
        assert result.returncode != 0, args
        assert "run `aiedit db upgrade` first" in result.stderr, (args, result.stderr)
    assert "upgraded from empty" in aiedit("db", "upgrade", env=env).stdout
    assert "already at" in aiedit("db", "upgrade", env=env).stdout
    result = aiedit("users", "limit", "nobody", "--max-queued", "1", env=env)
    assert result.returncode != 0 and "no user 'nobody'" in result.stderr


def test_worker_is_for_studio_mode_only(tmp_path):
    result = aiedit("worker", "--device", "cpu", env={"AIEDIT_DATA_DIR": str(tmp_path / "d"),
                                                      "AIEDIT_MODE": "personal"})
    assert result.returncode != 0
    assert "`aiedit worker` is for studio mode" in result.stderr
