"""Faults: SIGKILL in the middle of an upload and of running jobs, and a full disk (a small tmpfs
as the data directory). No accepted job is lost or left stuck, work that cannot proceed fails
with a clear error, and the server works again once the fault is gone."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.helpers import noise_image, png_bytes
from tests.proof.conftest import FINISHED, assert_error, post_job, wait_job

pytestmark = pytest.mark.e2e

UPSCALE = {"operation": "upscale", "model": "classic-lanczos"}


def gradient_png(size: int) -> bytes:
    import numpy as np

    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    rgb = np.dstack([np.broadcast_to(ramp, (size, size))] * 3)
    return png_bytes(np.dstack([rgb, np.full((size, size), 255, np.uint8)]))


def start_partial_upload(url: str, total: int, sent: int) -> socket.socket:
    """Begin a multipart POST that declares `total` bytes and send only `sent` of them."""
    host, port = url.removeprefix("http://").split(":")
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="request"\r\n\r\n'
        f"{json.dumps(UPSCALE)}\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="image"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        (
            f"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {total}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
        ).encode()
        + head
    )
    chunk = b"\x89PNG" + b"\x00" * 65532
    remaining = sent - len(head)
    while remaining > 0:
        remaining -= sock.send(chunk[: min(len(chunk), remaining)])
    return sock


def submit_slow_jobs(server, count: int) -> list[str]:
    big = gradient_png(1500)
    ids = []
    for _ in range(count):
        resp = post_job(server.url, {**UPSCALE, "params": {"scale": 4}}, {"image": big})
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    return ids


def test_sigkill_mid_upload_and_mid_job_loses_nothing(server_factory):
    server = server_factory()
    accepted = submit_slow_jobs(server, 3)
    deadline = time.monotonic() + 30
    while requests.get(f"{server.url}/v1/jobs/{accepted[0]}", timeout=5).json()["state"] != (
        "running"
    ):
        assert time.monotonic() < deadline, "the first job never started"
        time.sleep(0.05)
    upload = start_partial_upload(server.url, total=40 << 20, sent=12 << 20)
    time.sleep(0.3)
    server.kill()
    upload.close()

    restarted = server_factory(data_dir=server.data_dir)
    listed = requests.get(f"{restarted.url}/v1/jobs", timeout=10).json()
    assert sorted(j["id"] for j in listed) == sorted(accepted), "the cut upload made no job"
    for job_id in accepted:
        job = wait_job(restarted.url, job_id, timeout=120)
        assert job["state"] == "succeeded", job
    job_dirs = {p.name for p in (restarted.data_dir / "blobs").iterdir()}
    assert job_dirs <= set(accepted), "files of the cut upload were left behind"
    assert not list(restarted.data_dir.rglob(".tmp*"))
    fresh = post_job(restarted.url, UPSCALE, {"image": png_bytes(noise_image(8, 8))}).json()
    assert wait_job(restarted.url, fresh["id"])["state"] == "succeeded"


def test_sigkill_with_a_queue_of_jobs_loses_none_and_leaves_none_stuck(server_factory):
    server = server_factory()
    ids = submit_slow_jobs(server, 2)
    ids += [
        post_job(server.url, UPSCALE, {"image": png_bytes(noise_image(8, 8, seed=i))}).json()["id"]
        for i in range(6)
    ]
    time.sleep(0.5)
    server.kill()
    restarted = server_factory(data_dir=server.data_dir)
    states = [wait_job(restarted.url, job_id, timeout=120)["state"] for job_id in ids]
    assert states == ["succeeded"] * len(ids)


# --- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs mounted for this test (needs root, as `make test` runs in CI)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs for the full-disk test ({proc.stderr.strip()}); it needs "
            "root or CAP_SYS_ADMIN (CI runs as root)"
        )
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk with a ballast file until only about `leave` bytes remain."""
    ballast = disk / "ballast"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(ballast, "ab") as fh:
        try:
            fh.write(b"\x00" * max(0, free - leave))
            fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return ballast


def test_full_disk_gives_507_fails_jobs_clearly_and_recovers(small_disk, server_factory):
    # no free-space floor: this test is about what a disk that fills up anyway does
    server = server_factory(data_dir=small_disk / "data", env={"AIEDIT_MIN_FREE_BYTES": "0"})
    warmup = post_job(server.url, UPSCALE, {"image": png_bytes(noise_image(8, 8))}).json()
    wait_job(server.url, warmup["id"])
    ballast = fill(small_disk, leave=400 << 10)

    big_input = post_job(server.url, UPSCALE, {"image": png_bytes(noise_image(512, 512))})
    body = assert_error(big_input, 507, "insufficient_storage")
    assert "free space" in body["message"]

    small = post_job(
        server.url, {**UPSCALE, "params": {"scale": 8}}, {"image": png_bytes(noise_image(64, 64))}
    )
    assert small.status_code == 202, small.text
    job = wait_job(server.url, small.json()["id"], timeout=60)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "disk_full" and "free space" in job["error"]["message"]
    assert requests.get(server.url + "/v1/health", timeout=5).json()["status"] == "ok"
    assert not list(small_disk.rglob(".tmp*")), "partial files were removed"

    ballast.unlink()
    ballast = fill(small_disk, leave=0)
    tiny = post_job(server.url, UPSCALE, {"image": png_bytes(noise_image(4, 4))})
    assert_error(tiny, 507, "insufficient_storage")
    assert requests.get(server.url + "/v1/jobs", timeout=5).ok, "reads still work"

    ballast.unlink()
    again = post_job(
        server.url, {**UPSCALE, "params": {"scale": 8}}, {"image": png_bytes(noise_image(64, 64))}
    )
    assert again.status_code == 202, again.text
    assert wait_job(server.url, again.json()["id"])["state"] == "succeeded"
    states = {j["state"] for j in requests.get(server.url + "/v1/jobs", timeout=10).json()}
    assert states <= set(FINISHED), "no job is stuck"


def test_below_the_free_space_floor_new_jobs_get_507_before_anything_is_written(
    small_disk, server_factory
):
    server = server_factory(
        data_dir=small_disk / "data", env={"AIEDIT_MIN_FREE_BYTES": str(3 << 20)}
    )
    image = {"image": png_bytes(noise_image(8, 8))}
    assert post_job(server.url, UPSCALE, image).status_code == 202
    ballast = fill(small_disk, leave=2 << 20)
    before = sorted(p.name for p in (small_disk / "data" / "blobs").iterdir())
    body = assert_error(post_job(server.url, UPSCALE, image), 507, "insufficient_storage")
    assert "min_free_bytes" in body["message"]
    assert sorted(p.name for p in (small_disk / "data" / "blobs").iterdir()) == before
    ballast.unlink()
    assert post_job(server.url, UPSCALE, image).status_code == 202
