"""Diffusion: a warm job through `aiedit serve` against a bare diffusers pipeline call.

Both run the same tiny SDXL pipeline (from tests/fixtures/tiny_diffusion.py, loaded by hub id
from a HF cache with the hub offline) with the same prompt, size, steps and seed. The job is timed
from POST until its result is downloaded (raw RGBA) and decoded in the client, on a server where
the model is already loaded (the first job warms it); its own run time (started -> finished, as
the server records it) is a second row. The bare call runs in a process of its own with the
thread environment the server gives torch (see `BareProcess`), so the rows measure what the
server adds. The two sides are measured alternately, best of each, so that load from other
processes on a shared machine hits both alike. Targets: end to end / bare call <= 1.05, own run
time / bare call <= 1.02."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import requests

from bench.common import Row, bare_sdxl_call, timed, tiny_hub, tiny_sdxl_catalog
from tests.helpers import LiveServer

REPEATS = 6
SIZE, STEPS, SEED, PROMPT = 128, 10, 11, "a lighthouse at dusk"


def _timed_job(server, run_times: list[float]) -> float:
    started = time.perf_counter()
    run_times.append(_job(server))
    return time.perf_counter() - started


def _job(server: LiveServer) -> float:
    """Run one job over HTTP; returns the server's own run time (started -> finished)."""
    request = {
        "operation": "generate",
        "model": "bench-sdxl",
        "params": {"prompt": PROMPT, "steps": STEPS, "seed": SEED},
        "region": {"x": 0, "y": 0, "width": SIZE, "height": SIZE},
    }
    resp = requests.post(
        server.url + "/v1/jobs", files={"request": (None, json.dumps(request))}, timeout=60
    )
    resp.raise_for_status()
    job_id = resp.json()["id"]
    while True:
        job = requests.get(f"{server.url}/v1/jobs/{job_id}", params={"wait": 30}, timeout=90).json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            break
    if job["state"] != "succeeded":
        raise RuntimeError(f"bench job ended {job['state']}: {job.get('error')}")
    result = job["results"][0]
    resp = requests.get(server.url + result["url"], params={"format": "rgba"}, timeout=60)
    resp.raise_for_status()
    np.frombuffer(resp.content, np.uint8).reshape(result["height"], result["width"], 4)
    started, finished = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


class BareProcess:
    """The bare pipeline in a process of its own, started with the environment `aiedit serve`
    gives torch (the same thread plan: intra-op threads and OpenMP waits), so that the
    comparison measures what the server adds, not which OpenMP settings each side runs with.
    `call()` runs the pipeline once there and returns its time."""

    def __init__(self, hub: Path, env: dict[str, str]):
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_warm_job", "--bare", str(hub)],
            cwd=root,
            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(
                [str(root), os.environ.get("PYTHONPATH", "")])},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare pipeline process did not start")

    def call(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def _serve_bare(hub: Path) -> None:
    call = bare_sdxl_call(hub, PROMPT, STEPS, SIZE, SEED)
    call()  # the bare side's own one-off warm-up
    print("ready", flush=True)
    for _line in sys.stdin:
        print(timed(call), flush=True)


def main() -> list[Row]:
    from aiedit.config import Config
    from aiedit.engines import threads

    hub = tiny_hub(["sdxl"])
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.toml"
        catalog.write_text(tiny_sdxl_catalog(SIZE))
        env = {
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(hub),
            "AIEDIT_CATALOG_FILE": str(catalog),
            "AIEDIT_DEVICES": "cpu",
        }
        server = LiveServer(Path(tmp) / "data", env=env).start(timeout=60)
        bare_process = None
        try:
            cold = timed(lambda: _job(server))  # loads the model
            plan = threads.plan(Config(devices=["cpu"]))
            bare_process = BareProcess(hub, {**env, **threads.environment(plan)})
            warm, bare, run = [], [], []
            for _ in range(REPEATS):
                warm.append(_timed_job(server, run))
                bare.append(bare_process.call())
        finally:
            if bare_process is not None:
                bare_process.close()
            server.stop()
    name = f"tiny SDXL {SIZE} px, {STEPS} steps"
    return [
        Row(
            f"{name}: warm job end to end (POST→result decoded) ÷ bare pipeline call",
            min(warm),
            min(bare),
            target=1.05,
            note="HTTP, queueing, long-polls and the raw RGBA download included",
        ),
        Row(
            f"{name}: warm job's own run time (started→finished) ÷ bare pipeline call",
            min(run),
            min(bare),
            target=1.02,
        ),
        Row(
            f"{name}: cold first job (loads the model) ÷ bare pipeline call",
            cold,
            min(bare),
            note="load + run, reported only",
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        _serve_bare(Path(sys.argv[2]))
    else:
        from bench.common import print_table

        print_table(main())
