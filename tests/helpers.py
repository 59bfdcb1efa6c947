"""Helpers for tests: images, masks, job submission."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

AIEDIT_BIN = Path(sys.executable).with_name("aiedit")
CACHE_DIR = Path(os.environ.get("AIEDIT_CACHE", "~/.cache/aiedit")).expanduser()


@contextlib.contextmanager
def cache_lock(name: str):
    """Hold an exclusive lock on ~/.cache/aiedit/<name>.lock, so test processes running side by
    side (pytest-xdist workers, the Node tests) build a shared cache once, not at the same time."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
# Set by tests/conftest.py under `--db postgresql`: data dir -> database URL for live servers.
DATABASE_FOR = None


def png_bytes(pixels: np.ndarray) -> bytes:
    mode = "L" if pixels.ndim == 2 else ("RGBA" if pixels.shape[2] == 4 else "RGB")
    img = Image.fromarray(pixels, mode)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def noise_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return np.dstack([rgb, np.full((height, width), 255, np.uint8)])


def box_mask(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    return mask


def submit(client, operation: str, files: dict | None = None, headers=None, **request):
    """POST /v1/jobs through the Flask test client; `files` maps names to bytes."""
    data = {"request": json.dumps({"operation": operation, **request})}
    for name, content in (files or {}).items():
        data[name] = (io.BytesIO(content), f"{name}.png")
    return client.post(
        "/v1/jobs", data=data, headers=headers or {}, content_type="multipart/form-data"
    )


def wait_finished(client, job_id: str, timeout: float = 60.0, headers=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}?wait=5", headers=headers or {}).get_json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            return job
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def send_in_order(send, count: int, gap_s: float, timeout_s: float) -> tuple[list, float]:
    """Call `send(i)` for i in 0..count-1, each from its own thread started `gap_s` after the
    one before (they arrive in order while earlier ones still wait for their answers). Returns
    each call's (result, seconds it took) and the seconds until the last one was answered."""
    answers: list = [None] * count

    def run(i):
        sent = time.monotonic()
        result = send(i)
        answers[i] = (result, time.monotonic() - sent)

    threads = []
    started = time.monotonic()
    for i in range(count):
        thread = threading.Thread(target=run, args=(i,))
        thread.start()
        threads.append(thread)
        time.sleep(gap_s)
    for thread in threads:
        thread.join(timeout_s)
    return answers, time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`aiedit serve` in a subprocess bound to `host` (127.0.0.1) and a free port; tests always
    talk to it on 127.0.0.1."""

    def __init__(
        self, data_dir: Path, env: dict | None = None, port: int | None = None,
        host: str = "127.0.0.1",
    ):
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        if DATABASE_FOR is not None and "AIEDIT_DATABASE_URL" not in self.env:
            self.env["AIEDIT_DATABASE_URL"] = DATABASE_FOR(self.data_dir)
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
                self.host,
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


def latest_job(server: LiveServer, operation: str) -> dict:
    """The newest job of `operation` on a live server (it must have succeeded)."""
    jobs = requests.get(server.url + "/v1/jobs", timeout=10).json()
    job = next(j for j in jobs if j["operation"] == operation)
    assert job["state"] == "succeeded", job
    return job


def result_pixels(server: LiveServer, result: dict) -> np.ndarray:
    """A result of a live server's job, decoded to RGBA."""
    resp = requests.get(server.url + result["url"], timeout=10)
    resp.raise_for_status()
    return decode_png(resp.content)
