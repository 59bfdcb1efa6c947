"""Creative control: what a control layer costs, and how fast a Canny map is made.

- A generate job with one Canny control layer / the same job without it, on the tiny SDXL
  pipeline and the tiny ControlNet (tests/fixtures/tiny_diffusion.py, by hub id, hub offline),
  through the HTTP API of an in-process server, warm, measured alternately, best of each.
  Reported (the issue asks for the figure, not a target).
- The server's Canny preprocessing of a 1024x1024 picture (ops.preprocess.classic_map, the code
  a preprocess job or a `preprocess: true` control runs) against a 50 ms budget; OpenCV's bare
  Canny on the same grey image is given for comparison."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from bench.common import Row, best_of, tiny_hub

REPEATS = 3
SIZE, STEPS, SEED = 64, 4, 3
CATALOG = """
[[model]]
id = "bench-sdxl"
operations = ["generate"]
engine = "diffusion"
source = { repo = "tiny/sdxl", revision = "main", pipeline = "StableDiffusionXLPipeline" }
licence = "test"
options = { native_size = 64 }

[[model]]
id = "bench-controlnet"
operations = ["control"]
engine = "controlnet"
source = { repo = "tiny/controlnet-sdxl", revision = "main" }
licence = "test"
options = { kinds = ["canny"], base = "sdxl" }
"""


def picture(size: int) -> np.ndarray:
    import cv2

    img = np.zeros((size, size, 3), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(40):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 40, size // 8))
        cv2.circle(img, (x, y), r, tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    return np.dstack([img, np.full((size, size), 255, np.uint8)])


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _job(client, control: bool) -> None:
    params = {"prompt": "a house", "steps": STEPS, "seed": SEED}
    data = {}
    if control:
        params["control"] = [{"kind": "canny", "input": "control0", "preprocess": True}]
        data["control0"] = (io.BytesIO(_png(picture(SIZE))), "control0.png")
    request = {"operation": "generate", "model": "bench-sdxl", "params": params,
               "region": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}}
    data["request"] = json.dumps(request)
    resp = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}?wait=30").get_json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            break
    if job["state"] != "succeeded":
        raise RuntimeError(f"bench job ended {job['state']}: {job.get('error')}")
    assert client.get(job["results"][0]["url"]).status_code == 200


def _control_rows() -> list[Row]:
    from aiedit.app import create_app, services_of
    from aiedit.config import Config

    hub = tiny_hub(["sdxl", "controlnet-sdxl"])
    previous = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_HUB_CACHE")}
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp) / "catalog.toml"
            catalog.write_text(CATALOG)
            app = create_app(Config(data_dir=Path(tmp) / "data", testing=True,
                                    catalog_file=str(catalog), devices=["cpu"]))
            client = app.test_client()
            try:
                _job(client, True)  # loads both models and builds the ControlNet pipeline
                _job(client, False)
                with_control, without = [], []
                for _ in range(REPEATS):
                    with_control.append(best_of(1, lambda: _job(client, True)))
                    without.append(best_of(1, lambda: _job(client, False)))
            finally:
                services_of(app).stop()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return [Row(f"control: generate with a Canny control layer / without ({SIZE}px, "
                f"{STEPS} steps)", min(with_control), min(without),
                note="tiny SDXL + tiny ControlNet, warm, HTTP in-process; reported")]


def _canny_rows() -> list[Row]:
    import cv2

    from aiedit.ops.preprocess import PreprocessParams, classic_map

    image = picture(1024)
    params = PreprocessParams().load({"kind": "canny"})
    ours = best_of(7, lambda: classic_map("canny", image, params))
    gray = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    bare = best_of(7, lambda: cv2.Canny(gray, 100, 200))
    return [Row("preprocess: Canny map of 1024x1024 / 50 ms budget", ours, 0.050, target=1.0,
                note=f"OpenCV's bare Canny on the grey image: {bare * 1000:.1f} ms")]


def main() -> list[Row]:
    return _canny_rows() + _control_rows()


if __name__ == "__main__":
    from bench.common import print_table

    print_table(main())
