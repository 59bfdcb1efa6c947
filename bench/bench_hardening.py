"""Bounded resources (issue 10): what a burst of large uploads costs the server in memory, and
whether `/v1/health` still answers promptly while many long-polls are open.

- Memory: 8 clients upload a 4096² raw RGBA layer (64 MiB) at once (a classic ×1 upscale, so
  the job itself is cheap); the row is the server's peak resident memory (VmHWM) against its
  resident memory at rest just before.
- Long-polls: 64 clients long-poll (`wait=30`) a running job; meanwhile `/v1/health` is timed 40
  times. The row is the slowest of those answers against the 50 ms the issue allows.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from bench.common import Row
from tests.helpers import LiveServer, noise_image, png_bytes

UPLOADS = 8
UPLOAD_SIDE = 4096  # 4096 * 4096 * 4 bytes = 64 MiB
LONG_POLLS = 64
HEALTH_BUDGET_S = 0.050


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _raw_upload(url: str, data: bytes, side: int) -> int:
    request = {
        "operation": "upscale",
        "model": "classic-lanczos",
        "params": {"scale": 1},
        "raw": {"image": {"width": side, "height": side}},
    }
    files = {
        "request": (None, json.dumps(request)),
        "image": ("image.rgba", data, "application/octet-stream"),
    }
    return requests.post(url + "/v1/jobs", files=files, timeout=300).status_code


def measure_upload_memory(server: LiveServer) -> tuple[float, float, list[int]]:
    """(peak MiB, resting MiB, statuses) for UPLOADS concurrent raw uploads."""
    data = np.random.default_rng(0).integers(0, 256, UPLOAD_SIDE * UPLOAD_SIDE * 4, np.uint8)
    data = data.tobytes()
    pid = server.proc.pid
    resting = _status_kib(pid, "VmRSS") / 1024
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(_raw_upload(server.url, data, UPLOAD_SIDE)))
        for _ in range(UPLOADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _wait_idle(server)
    return _status_kib(pid, "VmHWM") / 1024, resting, statuses


def _wait_idle(server: LiveServer, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = requests.get(server.url + "/v1/jobs?page_size=100", timeout=30).json()
        if all(j["state"] in ("succeeded", "failed", "canceled") for j in jobs):
            return
        time.sleep(0.5)


def measure_health_under_long_polls(data_dir: Path) -> tuple[float, float, dict]:
    """(slowest health answer, median health answer, long-poll status counts), against the app
    served by waitress with `aiedit serve`'s settings in this process. The job the clients
    follow waits on an event rather than burning the CPU, so the row measures what open
    long-polls cost, not what a running model costs."""
    import dataclasses

    from waitress import create_server

    from aiedit.app import create_app, services_of
    from aiedit.cli import waitress_settings
    from aiedit.config import Config
    from aiedit.ops import base
    from aiedit.ops.base import ImageOutput

    release = threading.Event()

    def run(ctx):
        while not release.wait(0.05):
            ctx.progress(0, 1, "waiting")
        return [ImageOutput(ctx.inputs["image"].copy())]

    registry = base.registry()
    original = registry["restore"]
    registry["restore"] = dataclasses.replace(original, run=run)
    config = Config.load(data_dir=data_dir, rate_limit_per_minute=0)
    app = create_app(config)
    server = create_server(app, host="127.0.0.1", port=0, **waitress_settings(config))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}"
    statuses: dict[int, int] = {}
    try:
        files = {
            "request": (None, json.dumps({"operation": "restore", "model": "classic-denoise"})),
            "image": ("s.png", png_bytes(noise_image(64, 64, seed=2)), "image/png"),
        }
        job = requests.post(url + "/v1/jobs", files=files, timeout=60).json()
        while requests.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()["progress"][
            "stage"
        ] != "waiting":
            time.sleep(0.05)
        lock = threading.Lock()

        def poll():
            try:
                code = requests.get(f"{url}/v1/jobs/{job['id']}?wait=30", timeout=60).status_code
            except requests.RequestException:
                code = -1
            with lock:
                statuses[code] = statuses.get(code, 0) + 1

        pollers = [threading.Thread(target=poll, daemon=True) for _ in range(LONG_POLLS)]
        for thread in pollers:
            thread.start()
        time.sleep(1.0)  # let them all arrive
        timings = []
        for _ in range(40):
            started = time.perf_counter()
            requests.get(url + "/v1/health", timeout=60).raise_for_status()
            timings.append(time.perf_counter() - started)
            time.sleep(0.02)
        release.set()
        for thread in pollers:
            thread.join(60)
    finally:
        release.set()
        registry["restore"] = original
        server.close()
        services_of(app).stop()
    return max(timings), float(np.median(timings)), statuses


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="aiedit-bench-hardening-") as tmp:
        server = LiveServer(Path(tmp) / "data", env={"AIEDIT_RATE_LIMIT_PER_MINUTE": "0"}).start()
        try:
            peak, resting, upload_statuses = measure_upload_memory(server)
        finally:
            server.stop()
        slowest, median, poll_statuses = measure_health_under_long_polls(Path(tmp) / "polls")
    print(f"uploads: statuses {sorted(upload_statuses)}; peak {peak:.0f} MiB, rest {resting:.0f}")
    print(f"health under {LONG_POLLS} long-polls: slowest {slowest * 1e3:.1f} ms, median "
          f"{median * 1e3:.1f} ms; long-poll answers {poll_statuses}")
    return [
        Row(
            f"server peak RSS, {UPLOADS} concurrent 64 MiB raw uploads vs at rest",
            peak,
            resting,
            unit="MB",
            note=f"answers {sorted(upload_statuses)}",
        ),
        Row(
            f"/v1/health slowest answer with {LONG_POLLS} long-polls open vs 50 ms",
            slowest,
            HEALTH_BUDGET_S,
            target=1.0,
            note=f"median {median * 1e3:.1f} ms",
        ),
    ]


if __name__ == "__main__":
    from bench.common import print_table

    print_table(main())
