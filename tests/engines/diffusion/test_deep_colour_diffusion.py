"""Diffusion models are 8-bit by nature: on a 16-bit image their fill is blended in only through
the mask, so every other pixel keeps its 16-bit value (tiny pipelines, through the HTTP API)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.helpers import box_mask, png_bytes, submit, wait_finished

pytestmark = pytest.mark.ml


def noise16(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 65536, (height, width, 4), dtype=np.uint16)
    rgba[..., 3] = rng.integers(40000, 65536, (height, width), dtype=np.uint16)
    return rgba


def run16(client, operation, image, files=None, **request):
    height, width = image.shape[:2]
    resp = submit(client, operation, {"image": image.astype("<u2").tobytes(), **(files or {})},
                  raw={"image": {"width": width, "height": height, "format": "rgba16"}},
                  **request)
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"], timeout=240)
    assert job["state"] == "succeeded", job
    (result,) = job["results"]
    assert result["depth"] == 16
    png = client.get(result["url"]).data
    bgra = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert bgra.dtype == np.uint16
    return result, bgra[..., [2, 1, 0, 3]]


def test_diffusion_inpaint_keeps_16_bit_pixels_outside_the_mask(dclient):
    image = noise16(96, 80, seed=5)
    mask = box_mask(96, 80, (40, 30, 64, 52))
    result, out = run16(dclient, "inpaint", image, {"mask": png_bytes(mask)},
                        model="tiny-sdxl-inpaint",
                        region={"x": 100, "y": 50, "width": 96, "height": 80},
                        params={"prompt": "a window", "context_margin": 8, "feather": 4})
    assert result["offset"] == {"x": 100, "y": 50}
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert (out[mask == 0] % 257 != 0).any()  # the untouched pixels kept their low bits
    core = np.zeros_like(mask)
    core[34:48, 44:60] = 255  # inside the feather band the fill is the model's 8 bits, widened
    assert not np.array_equal(out[core > 0], image[core > 0])
    assert (out[core > 0][:, :3] % 257 == 0).all()


def test_diffusion_outpaint_keeps_the_16_bit_original_beyond_the_blend(dclient):
    image = noise16(40, 32, seed=6)
    result, out = run16(dclient, "outpaint", image, model="tiny-sdxl-inpaint",
                        params={"left": 8, "top": 4, "right": 16, "bottom": 0, "feather": 4})
    assert (result["width"], result["height"]) == (64, 36)
    inner = out[4:36, 8:48]
    assert np.array_equal(inner[4:-4, 4:-4], image[4:-4, 4:-4])
    assert (out[:4, :, :3] % 257 == 0).all()  # the new border is the model's, widened


def test_live_frames_are_8_bit_and_refuse_rgba16(dclient):
    import io
    import json

    resp = dclient.post("/v1/live", json={"operation": "inpaint", "model": "tiny-sdxl-inpaint",
                                          "params": {"prompt": "a cat", "steps": 2}})
    assert resp.status_code == 201, resp.get_json()
    session = resp.get_json()["id"]
    try:
        image = noise16(32, 32, seed=1)
        resp = dclient.post(f"/v1/live/{session}/frames", content_type="multipart/form-data",
                            data={"image": (io.BytesIO(image.astype("<u2").tobytes()), "image"),
                                  "request": json.dumps({"raw": {"image": {
                                      "width": 32, "height": 32, "format": "rgba16"}}})})
        assert resp.status_code == 422
        body = resp.get_json()
        assert body["code"] == "format_not_accepted" and "rgba8" in body["message"]
    finally:
        dclient.delete(f"/v1/live/{session}")
