"""The cancel watchdog: a job outlives a killed plug-in process only if it already finished."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aiedit_client import CancelWatchdog, Client, Pixels

pytestmark = pytest.mark.e2e

CLIENT_DIR = Path(__file__).resolve().parents[3] / "plugins" / "client"
BIG = 1024  # a 1024x1024 classic-denoise restore keeps the worker busy for about 2 s


def busy_worker(client):
    """Occupy the server's worker so that the next job waits in the queue."""
    return client.submit("restore", image=Pixels(BIG, BIG, os.urandom(BIG * BIG * 4)),
                         model="classic-denoise")


def wait_for_state(client, job_id, states, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id, wait=1)
        if job["state"] in states:
            return job
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def test_killed_host_gets_its_queued_job_canceled(live_server):
    client = Client(live_server.url)
    busy_worker(client)
    host = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(CLIENT_DIR)!r})
        from aiedit_client import CancelWatchdog, Client, Pixels
        client = Client({live_server.url!r})
        job = client.submit("restore", image=Pixels(8, 8, bytes(256)),
                            model="classic-denoise")
        CancelWatchdog(client, job["id"])
        print(job["id"], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", host], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -9, done.stderr
    job_id = done.stdout.strip()
    job = wait_for_state(client, job_id, ("canceled", "succeeded"))
    assert job["state"] == "canceled"


def test_watchdog_told_done_leaves_the_job_alone(live_server):
    client = Client(live_server.url)
    busy_worker(client)
    job = client.submit("restore", image=Pixels(8, 8, bytes(256)),
                            model="classic-denoise")
    CancelWatchdog(client, job["id"]).done()
    assert wait_for_state(client, job["id"], ("canceled", "succeeded"))["state"] == "succeeded"
