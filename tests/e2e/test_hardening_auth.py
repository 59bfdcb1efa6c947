"""Real `aiedit serve` processes: revoking keys never opens a server, web pages cannot drive the
key-less one, revoking a key from the CLI stops its jobs on the running server, one server per
data directory."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time

import pytest
import requests

from tests.e2e.test_server_process import gradient, post_job, run_cli, wait
from tests.helpers import AIEDIT_BIN, LiveServer, free_port, noise_image, png_bytes

IMAGE = png_bytes(noise_image(16, 16))


@pytest.fixture
def servers():
    started: list[LiveServer] = []

    def start(data_dir, **kw) -> LiveServer:
        server = LiveServer(data_dir, **kw)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def create_key(data_dir, name: str, role: str = "user") -> tuple[str, str]:
    """(key id, full key) from `aiedit keys create`."""
    proc = run_cli("keys", "create", "--name", name, "--role", role, data_dir=data_dir)
    key_id = re.search(r"created key (\w+)", proc.stderr).group(1)
    return key_id, proc.stdout.strip()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_revoking_the_only_key_of_a_server_bound_to_all_addresses_leaves_it_closed(
    servers, tmp_path
):
    """The review's reproduction: keys create, serve --host 0.0.0.0, keys revoke, anonymous GET."""
    data_dir = tmp_path / "data"
    key_id, key = create_key(data_dir, "a")
    server = servers(data_dir, host="0.0.0.0")
    assert requests.get(server.url + "/v1/jobs", headers=bearer(key), timeout=10).status_code == 200
    run_cli("keys", "revoke", key_id, data_dir=data_dir)

    anonymous = requests.get(server.url + "/v1/jobs", timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    assert "aiedit keys create --name NAME" in anonymous.json()["message"]
    assert requests.get(server.url + "/v1/jobs", headers=bearer(key), timeout=10).status_code == 401
    submitted = post_job(server, "upscale", {"image": IMAGE})
    assert submitted.status_code == 401
    assert requests.get(server.url + "/v1/health", timeout=10).json()["auth_required"] is True


def test_a_web_page_cannot_submit_or_read_jobs_on_the_keyless_server(servers, tmp_path):
    server = servers(tmp_path / "data")
    mine = wait(server, post_job(server, "upscale", {"image": IMAGE}).json()["id"])
    assert mine["state"] == "succeeded"
    own_result = f"{server.url}/v1/jobs/{mine['id']}/results/0"
    port = server.port
    rebinding = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
    foreign_origin = {"Origin": "https://attacker.example"}

    for headers, code in ((rebinding, "host_not_allowed"), (foreign_origin, "origin_not_allowed")):
        posted = post_job(server, "upscale", {"image": IMAGE}, headers=headers)
        assert posted.status_code == 403 and posted.json()["code"] == code, posted.text
        for url in (server.url + "/v1/jobs", f"{server.url}/v1/jobs/{mine['id']}", own_result):
            resp = requests.get(url, headers=headers, timeout=10)
            assert resp.status_code == 403, (url, resp.status_code)
            assert resp.json()["code"] == code
            assert "Access-Control-Allow-Origin" not in resp.headers
    listing = requests.get(server.url + "/v1/jobs", timeout=10).json()
    assert [job["id"] for job in listing] == [mine["id"]], "no job was submitted by the page"
    assert requests.get(own_result, timeout=30).status_code == 200, "the plugin still can"


def test_a_wildcard_cors_origin_on_a_keyless_server_is_refused_at_start(tmp_path):
    env = {**os.environ, "AIEDIT_DATA_DIR": str(tmp_path / "d"), "AIEDIT_CORS_ORIGINS": "*"}
    proc = subprocess.run(
        [str(AIEDIT_BIN), "serve", "--port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode != 0
    assert "cors_origins = *" in proc.stderr and "needs no API key" in proc.stderr


def wait_state(server, job_id, headers, states, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = requests.get(f"{server.url}/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        if job["state"] in states and (job["state"] != "running" or job["progress"]["step"] >= 1):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


def test_revoking_a_key_from_the_cli_cancels_its_jobs_on_the_running_server(servers, tmp_path):
    data_dir = tmp_path / "data"
    alice_id, alice = create_key(data_dir, "alice")
    _, admin = create_key(data_dir, "root", role="admin")
    server = servers(data_dir)
    big = png_bytes(gradient(3000, 3000))
    ids = [
        post_job(
            server, "upscale", {"image": big}, headers=bearer(alice), params={"scale": 4},
            model="classic-lanczos",
        ).json()["id"]
        for _ in range(2)
    ]
    running = wait_state(server, ids[0], bearer(admin), ("running",))
    assert running["state"] == "running"

    revoked = run_cli("keys", "revoke", alice_id, data_dir=data_dir)
    assert "canceled" in revoked.stdout
    started = time.monotonic()
    for job_id in ids:
        job = wait_state(server, job_id, bearer(admin), ("succeeded", "failed", "canceled"))
        assert job["state"] == "canceled", job
    assert time.monotonic() - started < 20, "the running job stopped at its next step"
    assert job["started_at"] is None, "the queued job never ran"


def test_a_second_server_on_the_same_data_directory_refuses_to_start(servers, tmp_path):
    data_dir = tmp_path / "data"
    first = servers(data_dir)
    second = subprocess.run(
        [str(AIEDIT_BIN), "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60,
    )
    assert second.returncode != 0
    assert "another aiedit server" in second.stderr
    assert f"pid {first.proc.pid}" in second.stderr and "--data-dir" in second.stderr
    assert requests.get(first.url + "/v1/health", timeout=10).ok, "the first one keeps serving"

    first.kill()  # SIGKILL: no clean-up runs, the OS drops the lock
    restarted = servers(data_dir)
    assert requests.get(restarted.url + "/v1/health", timeout=10).ok
    modes = {
        "data": stat.S_IMODE(data_dir.stat().st_mode),
        "db": stat.S_IMODE((data_dir / "aiedit.sqlite3").stat().st_mode),
    }
    assert modes == {"data": 0o700, "db": 0o600}
