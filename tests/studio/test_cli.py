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

    # several API processes and workers on other machines share the database: not a file
    result = aiedit("serve", "--port", "0", env={
        **base, "AIEDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'studio.sqlite3'}",
        "AIEDIT_BROKER_URL": redis_server.url})
    assert result.returncode != 0
    assert "studio mode needs PostgreSQL" in result.stderr, result.stderr

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


def test_a_second_worker_on_the_same_accelerator_is_refused(tmp_path):
    """Two workers on one GPU would both load models into its memory: the second is refused
    before it loads anything; CPU workers are not limited; a killed holder frees the device."""
    env = {"AIEDIT_MODE": "studio", "AIEDIT_DATA_DIR": str(tmp_path / "d"),
           "TMPDIR": str(tmp_path)}
    holder = subprocess.Popen(
        [str(AIEDIT_BIN.parent / "python"), "-c",
         "import sys, time; from aiedit.jobs.worker import claim_device; "
         "claim_device('cuda'); print('held', flush=True); time.sleep(60)"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = aiedit("worker", "--device", "cuda:0", env=env)
        assert result.returncode != 0
        assert "another aiedit worker on this machine already runs on cuda:0" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    from aiedit.jobs import worker

    os.environ["TMPDIR"], before = str(tmp_path), os.environ.get("TMPDIR")
    import tempfile

    tempfile.tempdir = None
    try:
        fd = worker.claim_device("cuda:0")  # the killed holder's lock is gone with it
        assert fd is not None
        with pytest.raises(worker.DeviceBusy):
            worker.claim_device("cuda")
        assert worker.claim_device("cpu") is None and worker.claim_device("cpu") is None
        os.close(fd)
    finally:
        if before is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None
