"""Live sessions: one frame's round trip over HTTP against a bare pipeline call of the same work.

The server (`aiedit serve`, tiny SDXL pipeline loaded by hub id from a HF cache with the hub
offline) has a live session open with the model loaded; a frame is a raw RGBA canvas of
SIZE x SIZE sent as multipart, rendered (STEPS steps, fixed seed) and returned as raw RGBA. The
bare call is `pipe(...)` with the same prompt, size, steps and seed. Both use one torch thread
(a shared machine makes OpenMP's waiting threads the noise). Measured alternately, best of each.
Target: live frame round trip / bare call <= 1.15."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import requests

from bench.common import Row, bare_sdxl_call, timed, tiny_hub, tiny_sdxl_catalog
from tests.helpers import LiveServer

REPEATS = 3
SIZE, STEPS, SEED, PROMPT = 256, 4, 21, "a sailing boat"


def _frame(server: LiveServer, session_id: str, canvas: bytes) -> None:
    request = {"raw": {"image": {"width": SIZE, "height": SIZE}}}
    resp = requests.post(
        f"{server.url}/v1/live/{session_id}/frames",
        params={"format": "rgba"},
        files={"request": (None, json.dumps(request)), "image": ("canvas", canvas)},
        timeout=300,
    )
    resp.raise_for_status()
    assert len(resp.content) == SIZE * SIZE * 4


def main() -> list[Row]:
    import numpy as np

    hub = tiny_hub(["sdxl"])
    canvas = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 4), np.uint8).tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.toml"
        catalog.write_text(tiny_sdxl_catalog(SIZE))
        env = {
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(hub),
            "AIEDIT_CATALOG_FILE": str(catalog),
            "AIEDIT_DEVICES": "cpu",
            "OMP_NUM_THREADS": "1",
        }
        server = LiveServer(Path(tmp) / "data", env=env).start(timeout=60)
        try:
            resp = requests.post(f"{server.url}/v1/live", json={
                "operation": "generate", "model": "bench-sdxl",
                "params": {"prompt": PROMPT, "steps": STEPS, "seed": SEED}}, timeout=60)
            resp.raise_for_status()
            session_id = resp.json()["id"]
            _frame(server, session_id, canvas)  # loads the model
            bare_call = bare_sdxl_call(hub, PROMPT, STEPS, SIZE, SEED, threads=1)
            bare_call()
            live, bare = [], []
            for _ in range(REPEATS):
                live.append(timed(lambda: _frame(server, session_id, canvas)))
                bare.append(timed(bare_call))
            requests.delete(f"{server.url}/v1/live/{session_id}", timeout=30)
        finally:
            server.stop()
    return [
        Row(f"live: frame round trip (HTTP, raw RGBA) / bare pipeline call ({SIZE}px, "
            f"{STEPS} steps)", min(live), min(bare), target=1.15),
    ]


if __name__ == "__main__":
    from bench.common import print_table

    print_table(main())
