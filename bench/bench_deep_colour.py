"""Deep colour (issue 14): a 2048² 16-bit gradient upscaled x2 with classic Lanczos through the
HTTP API (in-process app, real SQLite, raw rgba16 upload and download).

- distinct levels down the 4096-row result: at least 1,024 (the 8-bit path keeps at most 256;
  the same gradient sent as rgba8 is measured beside it for the ratio);
- the server's time for the 16-bit job ÷ the same job at 8 bits (the job's started_at ..
  finished_at, and the whole submit → result download), reported;
- the identity (scale 1) returns the 16-bit input bit for bit;
- a x4 net (the converted realesr-animevideov3 through the engine, CPU) over 16-bit tiles ÷ the
  same over 8-bit tiles (nets compute in float: the difference is the conversions), reported.

Sizes: BENCH_DEEP_SIZE (default 2048), BENCH_DEEP_NET_SIZE (default 128), BENCH_DEEP_REPEATS
(default 2)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from bench.common import Row

SIZE = int(os.environ.get("BENCH_DEEP_SIZE", "2048"))
NET_SIZE = int(os.environ.get("BENCH_DEEP_NET_SIZE", "128"))
REPEATS = int(os.environ.get("BENCH_DEEP_REPEATS", "2"))
MIN_LEVELS = 1024


def gradient16(size: int) -> np.ndarray:
    """Top to bottom 0 .. 65535 in every colour channel, opaque."""
    levels = np.linspace(0, 65535, size).round().astype(np.uint16)
    rgba = np.empty((size, size, 4), np.uint16)
    rgba[..., :3] = levels[:, None, None]
    rgba[..., 3] = 65535
    return rgba


def _job(client, pixels: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """(result pixels, server run seconds, submit-to-download seconds)."""
    deep = pixels.dtype == np.uint16
    height, width = pixels.shape[:2]
    request = {"operation": "upscale", "model": "classic-lanczos", "params": {"scale": scale},
               "raw": {"image": {"width": width, "height": height,
                                 "format": "rgba16" if deep else "rgba8"}}}
    import io

    started = time.perf_counter()
    resp = client.post("/v1/jobs", content_type="multipart/form-data", data={
        "request": json.dumps(request),
        "image": (io.BytesIO(pixels.astype("<u2" if deep else np.uint8).tobytes()), "image")})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}?wait=10").get_json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            break
    assert job["state"] == "succeeded", job
    result = job["results"][0]
    body = client.get(result["url"] + ("?format=rgba16" if deep else "?format=rgba")).data
    total = time.perf_counter() - started
    out = np.frombuffer(body, "<u2" if deep else np.uint8)
    out = out.reshape(result["height"], result["width"], 4)
    run = (datetime.fromisoformat(job["finished_at"])
           - datetime.fromisoformat(job["started_at"])).total_seconds()
    client.delete(f"/v1/jobs/{job_id}")
    return out, run, total


def net_rows() -> list[Row]:
    from aiedit.imaging.tiles import run_tiled_retrying
    from bench.bench_upscale import converted, photo

    with tempfile.TemporaryDirectory() as models:  # the conversion goes to a scratch dir
        previous = os.environ.get("AIEDIT_MODELS_DIR")
        os.environ["AIEDIT_MODELS_DIR"] = models
        try:
            net = converted("realesr-animevideov3-x4")
        finally:
            if previous is None:
                del os.environ["AIEDIT_MODELS_DIR"]
            else:
                os.environ["AIEDIT_MODELS_DIR"] = previous
    rgb8 = np.ascontiguousarray(photo("astronaut", NET_SIZE))
    rgb16 = rgb8.astype(np.uint16) * 257
    times = {8: [], 16: []}
    for _ in range(REPEATS):
        for depth, rgb in ((8, rgb8), (16, rgb16)):
            started = time.perf_counter()
            out = run_tiled_retrying(rgb, net, 64, 8)
            times[depth].append(time.perf_counter() - started)
            assert out.dtype == rgb.dtype
    return [Row(f"deep: x4 net {NET_SIZE}² in 64 tiles, 16-bit / 8-bit", min(times[16]),
                min(times[8]), note=f"best of {REPEATS}; realesr-animevideov3, CPU; reported")]


def main() -> list[Row]:
    from aiedit.app import create_app, services_of
    from aiedit.config import Config

    source16 = gradient16(SIZE)
    source8 = ((source16.astype(np.uint32) + 128) // 257).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Config(data_dir=Path(tmp) / "data", testing=True))
        client = app.test_client()
        try:
            identity, _, _ = _job(client, source16[:256, :256], 1)
            assert np.array_equal(identity, source16[:256, :256]), "identity is not bit-exact"
            runs = {8: [], 16: []}
            totals = {8: [], 16: []}
            for _ in range(REPEATS):  # alternating: the machine is shared
                out8, run, total = _job(client, source8, 2)
                runs[8].append(run)
                totals[8].append(total)
                out16, run, total = _job(client, source16, 2)
                runs[16].append(run)
                totals[16].append(total)
        finally:
            services_of(app).stop()
    column = SIZE  # the middle column of the result
    levels16 = len(np.unique(out16[:, column, 0]))
    levels8 = len(np.unique(out8[:, column, 0]))
    return [
        Row(f"deep: {MIN_LEVELS} / distinct levels, {SIZE}² 16-bit gradient x2 Lanczos",
            MIN_LEVELS, levels16, target=1.0, unit="",
            note=f"{levels16} levels at 16 bits down {2 * SIZE} rows"),
        Row("deep: levels 16-bit / 8-bit result, same gradient x2", levels16, levels8, unit="",
            note=f"{levels8} levels at 8 bits; reported"),
        Row(f"deep: server run time x2 {SIZE}² 16-bit / 8-bit", min(runs[16]), min(runs[8]),
            note=f"best of {REPEATS}; job started_at..finished_at; reported"),
        Row(f"deep: submit..download x2 {SIZE}² 16-bit / 8-bit", min(totals[16]),
            min(totals[8]), note=f"best of {REPEATS}; raw upload and download; reported"),
        *net_rows(),
    ]


if __name__ == "__main__":
    from bench.common import print_table

    print_table(main())
