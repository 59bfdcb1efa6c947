"""Load: 200 jobs from 20 concurrent clients against one `aiedit serve` (personal mode). Every
client submits classic upscales of small images and follows each with long-polls, as the plugins
do. Reports lost jobs, 5xx answers and queue latency (started_at - created_at) p50 / p99."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from bench.common import Row
from tests.helpers import LiveServer, noise_image, png_bytes

JOBS = 200
CLIENTS = 20
REQUEST = '{"operation": "upscale", "model": "classic-lanczos", "params": {"scale": 2}}'


@dataclass
class LoadResult:
    jobs: int
    clients: int
    wall_s: float
    succeeded: int = 0
    lost: list[str] = field(default_factory=list)
    server_errors: int = 0
    rate_limited: int = 0
    long_polls_refused: int = 0  # 429 too_many_long_polls: retried after Retry-After
    queue_latency_s: list[float] = field(default_factory=list)
    run_s: list[float] = field(default_factory=list)

    def percentile(self, values: list[float], p: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self) -> str:
        q = self.queue_latency_s
        return (
            f"{self.jobs} jobs from {self.clients} clients in {self.wall_s:.1f} s: "
            f"{self.succeeded} succeeded, {len(self.lost)} lost, {self.server_errors} 5xx, "
            f"{self.rate_limited} rate-limited, {self.long_polls_refused} long-polls refused "
            f"over the cap; queue latency p50 {self.percentile(q, 50):.3f} s, "
            f"p99 {self.percentile(q, 99):.3f} s; run time median "
            f"{statistics.median(self.run_s) if self.run_s else float('nan'):.3f} s"
        )


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _code(resp: requests.Response) -> str | None:
    try:
        return resp.json().get("code")
    except ValueError:
        return None


class _Client:
    """One plugin-like client: submit, then long-poll until the job ends; retries on 429."""

    def __init__(self, url: str, image: bytes, result: LoadResult, lock: threading.Lock):
        self.url = url
        self.image = image
        self.result = result
        self.lock = lock
        self.session = requests.Session()

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        while True:
            resp = self.session.request(method, self.url + path, timeout=120, **kwargs)
            with self.lock:
                if resp.status_code >= 500:
                    self.result.server_errors += 1
                if resp.status_code == 429 and _code(resp) == "too_many_long_polls":
                    self.result.long_polls_refused += 1
                elif resp.status_code == 429:
                    self.result.rate_limited += 1
            if resp.status_code != 429:
                return resp
            time.sleep(float(resp.headers.get("Retry-After", "1")))

    def run_one(self) -> None:
        files = {"request": (None, REQUEST), "image": ("image.png", self.image, "image/png")}
        resp = self._call("POST", "/v1/jobs", files=files)
        if resp.status_code != 202:
            with self.lock:
                self.result.lost.append(f"submit answered {resp.status_code}: {resp.text[:200]}")
            return
        job = resp.json()
        deadline = time.monotonic() + 300
        while job["state"] not in ("succeeded", "failed", "canceled"):
            if time.monotonic() > deadline:
                break
            resp = self._call("GET", f"/v1/jobs/{job['id']}", params={"wait": 10})
            if resp.status_code != 200:
                break
            job = resp.json()
        with self.lock:
            if job["state"] != "succeeded":
                self.result.lost.append(f"{job['id']}: {job['state']} {job.get('error')}")
                return
            self.result.succeeded += 1
            latency = _seconds(job["created_at"], job["started_at"])
            run = _seconds(job["started_at"], job["finished_at"])
            if latency is not None:
                self.result.queue_latency_s.append(latency)
            if run is not None:
                self.result.run_s.append(run)


def run_load(url: str, jobs: int = JOBS, clients: int = CLIENTS, size: int = 64) -> LoadResult:
    """Run `jobs` jobs spread over `clients` threads against the server at `url`."""
    image = png_bytes(noise_image(size, size, seed=3))
    result = LoadResult(jobs=jobs, clients=clients, wall_s=0.0)
    lock = threading.Lock()
    per_client = [jobs // clients + (i < jobs % clients) for i in range(clients)]

    def work(count: int) -> None:
        client = _Client(url, image, result, lock)
        for _ in range(count):
            client.run_one()

    threads = [threading.Thread(target=work, args=(n,)) for n in per_client]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - started
    return result


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="aiedit-bench-load-") as tmp:
        server = LiveServer(Path(tmp) / "data").start()
        try:
            alone = run_load(server.url, jobs=40, clients=1)
            loaded = run_load(server.url)
        finally:
            server.stop()
    print(f"one client:  {alone.summary()}")
    print(f"20 clients:  {loaded.summary()}")
    note = (f"{len(loaded.lost)} lost, {loaded.server_errors} 5xx, {loaded.rate_limited} 429, "
            f"{loaded.long_polls_refused} long-polls refused")
    per_job_alone = alone.wall_s / alone.jobs
    median_run = statistics.median(loaded.run_s)
    return [
        Row(
            f"load: s per job, {CLIENTS} clients vs 1 client",
            loaded.wall_s / loaded.jobs,
            per_job_alone,
            note=note,
        ),
        Row(
            "load: queue latency p50 vs median job run time",
            loaded.percentile(loaded.queue_latency_s, 50),
            median_run,
        ),
        Row(
            "load: queue latency p99 vs median job run time",
            loaded.percentile(loaded.queue_latency_s, 99),
            median_run,
        ),
    ]


if __name__ == "__main__":
    from bench.common import print_table

    print_table(main())
