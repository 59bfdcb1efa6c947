"""Upscale's diffusion refine pass: after the enlargement, a diffusion model (the tiny SDXL,
loaded by hub id with the hub offline) redraws the image tile by tile at `refine_strength`,
with the seams blended."""

from __future__ import annotations

import numpy as np
import pytest

from aiedit.ops import tile_refine
from aiedit.ops.base import OpContext, Region
from tests.engines.diffusion.test_jobs_api import fetch, run_job
from tests.helpers import noise_image, png_bytes, submit

pytestmark = pytest.mark.ml


def upscale(dclient, image, **params):
    job = run_job(dclient, "upscale", {"image": image}, model="classic-lanczos",
                  params={"scale": 2, **params})
    return job, fetch(dclient, job["results"][0])


def test_the_refine_pass_redraws_the_enlarged_image(dclient):
    image = noise_image(32, 32, seed=1)
    image[..., 3] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]
    _, plain = upscale(dclient, image)
    refine = {"refine_model": "tiny-sdxl", "refine_strength": 0.6, "refine_prompt": "moss",
              "seed": 3}
    job, refined = upscale(dclient, image, **refine)
    assert refined.shape == plain.shape == (64, 64, 4)
    assert np.abs(refined[..., :3].astype(int) - plain[..., :3].astype(int)).mean() > 1.0
    assert np.array_equal(refined[..., 3], plain[..., 3]), "alpha is the enlargement's"
    assert job["results"][0]["seed"] == 3
    _, again = upscale(dclient, image, **refine)
    assert np.array_equal(again, refined), "same seed, same pixels"
    _, kept = upscale(dclient, image, **{**refine, "refine_strength": 0.0})
    assert np.array_equal(kept, plain), "strength 0 keeps the enlarged pixels"


@pytest.mark.parametrize("model", ["no-such-model", "classic-lanczos", "tiny-controlnet-sdxl"])
def test_a_refine_model_that_cannot_redraw_is_refused_before_queueing(dclient, model):
    resp = submit(dclient, "upscale", {"image": png_bytes(noise_image(32, 32))},
                  model="classic-lanczos", params={"refine_model": model})
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == "unknown_model"
    assert "refine_model" in resp.get_json()["message"]


def test_a_refined_classic_upscale_runs_where_models_run(dservices):
    runner = dservices.runner
    assert runner.cpu_only("classic-lanczos", "upscale", {"refine_model": None})
    assert not runner.cpu_only("classic-lanczos", "upscale",
                               {"refine_model": "tiny-sdxl", "refine_strength": 0.3})


class _Identity:
    """A model whose image-to-image call returns its input: the tiling alone must then give
    back the image (seams blended without a trace)."""

    native_area, multiple = 32 * 32, 8

    def __init__(self):
        self.stages = []

    def __call__(self, progress, *, image, stage, **kwargs):
        from types import SimpleNamespace

        self.stages.append(stage)
        return SimpleNamespace(images=[image], seed=kwargs["seed"])


def test_tiles_blend_back_to_the_image_without_seams():
    from types import SimpleNamespace

    model = _Identity()
    image = noise_image(100, 70, seed=5)
    out = image.copy()
    ctx = OpContext(
        params={"refine_model": "x", "refine_strength": 0.5, "refine_prompt": "",
                "refine_steps": None, "refine_tile": None, "seed": 9},
        inputs={}, region=Region(0, 0, 100, 70), model=None, progress=lambda *a: None,
        load=lambda _id: SimpleNamespace(engine="diffusion", obj=model,
                                         entry=SimpleNamespace(defaults={})),
    )
    assert tile_refine.run(ctx, out) == 9
    assert len(model.stages) == 4 * 3 and model.stages[-1] == "refining tile 12/12"
    assert np.abs(out.astype(int) - image.astype(int)).max() <= 1


class _Shifting(_Identity):
    """Each tile comes back brighter than the one before: without blending the seams would be
    steps of that size."""

    def __call__(self, progress, *, image, stage, **kwargs):
        from types import SimpleNamespace

        from PIL import Image

        self.stages.append(stage)
        shift = 40 * len(self.stages)
        pixels = np.clip(np.asarray(image).astype(int) + shift, 0, 255).astype(np.uint8)
        return SimpleNamespace(images=[Image.fromarray(pixels)], seed=kwargs["seed"])


def test_seams_fade_over_the_overlap():
    from types import SimpleNamespace

    model = _Shifting()
    out = np.full((64, 120, 4), 20, np.uint8)
    ctx = OpContext(
        params={"refine_model": "x", "refine_strength": 0.5, "refine_prompt": "",
                "refine_steps": None, "refine_tile": 64, "seed": 1},
        inputs={}, region=Region(0, 0, 120, 64), model=None, progress=lambda *a: None,
        load=lambda _id: SimpleNamespace(engine="diffusion", obj=model,
                                         entry=SimpleNamespace(defaults={})),
    )
    tile_refine.run(ctx, out)
    row = out[32, :, 0].astype(int)
    assert row[0] == 60 and row[-1] == 100, "each tile's own shift away from the seam"
    assert np.abs(np.diff(row)).max() <= 12, "no step: the seam fades over the overlap"
