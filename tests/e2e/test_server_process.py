"""`aiedit serve` as a user runs it: real HTTP, restarts, SIGKILL, keys, binding rules."""

import io
import json
import os
import subprocess
import time

import numpy as np
import requests
from PIL import Image

from tests.helpers import AIEDIT_BIN, box_mask, noise_image, png_bytes


def gradient(width: int, height: int) -> np.ndarray:
    """A smooth RGBA image: compresses fast, so big uploads stay quick to build."""
    x = np.arange(width, dtype=np.uint32)[None, :] * 255 // max(1, width - 1)
    y = np.arange(height, dtype=np.uint32)[:, None] * 255 // max(1, height - 1)
    return np.dstack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.broadcast_to((x + y) // 2, (height, width)),
            np.full((height, width), 255),
        ]
    ).astype(np.uint8)


def post_job(server, operation, files, headers=None, **request):
    parts = {"request": (None, json.dumps({"operation": operation, **request}))}
    for name, data in files.items():
        parts[name] = (f"{name}.png", data, "image/png")
    resp = requests.post(server.url + "/v1/jobs", files=parts, headers=headers or {}, timeout=60)
    return resp


def wait(server, job_id, until=("succeeded", "failed", "canceled"), timeout=120, headers=None):
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = requests.get(
            f"{server.url}/v1/jobs/{job_id}", params={"wait": 5}, headers=headers or {}, timeout=30
        ).json()
        if job["state"] in until:
            return job
    raise AssertionError(f"job {job_id} never reached {until}: {job}")


def wait_running_with_progress(server, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()
        if job["state"] == "running" and job["progress"]["step"] >= 1:
            return job
        assert job["state"] in ("queued", "running"), job
        time.sleep(0.02)
    raise AssertionError("job never showed progress")


def test_upscale_a_4096_png_2x_over_http(server_factory):
    server = server_factory()
    image = gradient(4096, 4096)
    resp = post_job(
        server, "upscale", {"image": png_bytes(image)}, params={"scale": 2}, model="classic-lanczos"
    )
    assert resp.status_code == 202, resp.text
    job = wait(server, resp.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["model"] == "classic-lanczos"
    result = job["results"][0]
    assert (result["width"], result["height"]) == (8192, 8192)
    raw = requests.get(server.url + result["url"], params={"format": "rgba"}, timeout=120)
    assert len(raw.content) == 8192 * 8192 * 4
    pixels = np.frombuffer(raw.content, np.uint8).reshape(8192, 8192, 4)
    assert abs(int(pixels[4096, 8191, 0]) - 255) <= 2 and pixels[0, 0, 0] <= 2


def test_inpaint_and_restore_over_http(server_factory):
    server = server_factory()
    image = noise_image(300, 200)
    mask = box_mask(300, 200, (100, 50, 180, 120))
    job = wait(
        server,
        post_job(server, "inpaint", {"image": png_bytes(image), "mask": png_bytes(mask)}).json()[
            "id"
        ],
    )
    out = np.asarray(
        Image.open(
            io.BytesIO(requests.get(server.url + job["results"][0]["url"], timeout=30).content)
        ).convert("RGBA")
    )
    assert np.array_equal(out[mask == 0], image[mask == 0])
    job = wait(server, post_job(server, "restore", {"image": png_bytes(image)}).json()["id"])
    assert job["state"] == "succeeded"


def test_queued_jobs_run_after_a_restart(server_factory, tmp_path):
    server = server_factory()
    big = png_bytes(gradient(2048, 2048))
    ids = [
        post_job(
            server, "upscale", {"image": big}, params={"scale": 4}, model="classic-lanczos"
        ).json()["id"]
        for _ in range(3)
    ]
    server.stop()
    restarted = server_factory(data_dir=server.data_dir)
    for job_id in ids:
        job = wait(restarted, job_id)
        assert job["state"] == "succeeded", job


def kill_mid_job(server_factory):
    """Start a server, start a few-second job, SIGKILL the server while the job runs."""
    server = server_factory()
    big = png_bytes(gradient(3000, 3000))
    job_id = post_job(
        server, "upscale", {"image": big}, params={"scale": 4}, model="classic-lanczos"
    ).json()["id"]
    wait_running_with_progress(server, job_id)
    server.kill()
    return server, job_id


def test_sigkill_mid_job_reruns_it_then_fails_it_as_interrupted(server_factory):
    server, job_id = kill_mid_job(server_factory)

    second = server_factory(data_dir=server.data_dir)
    job = requests.get(f"{second.url}/v1/jobs/{job_id}", timeout=10).json()
    assert job["state"] in ("queued", "running", "succeeded"), job
    wait_running_with_progress(second, job_id)
    second.kill()

    third = server_factory(data_dir=server.data_dir)
    job = wait(third, job_id)
    assert job["state"] == "failed"
    assert job["error"]["code"] == "interrupted"
    fresh = post_job(third, "upscale", {"image": png_bytes(noise_image(8, 8))}).json()["id"]
    assert wait(third, fresh)["state"] == "succeeded", "the worker is free after recovery"


def test_sigkill_once_is_recovered_by_a_rerun(server_factory):
    server, job_id = kill_mid_job(server_factory)
    restarted = server_factory(data_dir=server.data_dir)
    assert wait(restarted, job_id)["state"] == "succeeded"


def run_cli(*args, data_dir, check=True, timeout=60):
    env = {**os.environ, "AIEDIT_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [str(AIEDIT_BIN), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=check,
    )


def test_keys_from_the_cli_protect_the_server(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    alice = run_cli("keys", "create", "--name", "alice", data_dir=data_dir).stdout.strip()
    bob = run_cli("keys", "create", "--name", "bob", data_dir=data_dir).stdout.strip()
    assert alice.startswith("aiedit_") and alice != bob
    assert "alice" in run_cli("keys", "list", data_dir=data_dir).stdout
    server = server_factory(data_dir=data_dir)
    assert requests.get(server.url + "/v1/jobs", timeout=10).status_code == 401
    headers = {"Authorization": f"Bearer {alice}"}
    job_id = post_job(
        server, "upscale", {"image": png_bytes(noise_image(8, 8))}, headers=headers
    ).json()["id"]
    wait(server, job_id, headers=headers)
    other = requests.get(
        f"{server.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {bob}"}, timeout=10
    )
    assert other.status_code == 404


def test_refuses_to_listen_beyond_loopback_without_a_key(tmp_path):
    proc = run_cli(
        "serve", "--host", "0.0.0.0", "--port", "0", data_dir=tmp_path / "d", check=False
    )
    assert proc.returncode != 0
    assert "aiedit keys create" in proc.stderr


def test_environment_variables_configure_serve(tmp_path):
    from tests.helpers import free_port

    port = free_port()
    env = {**os.environ, "AIEDIT_PORT": str(port), "AIEDIT_DATA_DIR": str(tmp_path / "envdata")}
    log_path = tmp_path / "serve.log"
    log_file = open(log_path, "wb")  # a file, not a pipe nobody reads: the log cannot block it
    proc = subprocess.Popen([str(AIEDIT_BIN), "serve"], env=env, stderr=log_file)
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert proc.poll() is None, log_path.read_text(errors="replace")[-2000:]
        assert health is not None, f"nothing answered on AIEDIT_PORT {port} within 30 s"
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert (tmp_path / "envdata" / "aiedit.sqlite3").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("aiedit serve did not stop within 30 s of SIGTERM:\n"
                                 + log_path.read_text(errors="replace")[-3000:]) from None
        finally:
            log_file.close()
