"""Refine (generate or inpaint over the pixels under the region, by `strength`) and variations
(`count`), through the HTTP jobs API on the tiny pipelines."""

from __future__ import annotations

import numpy as np
import pytest

from tests.engines.diffusion.test_jobs_api import fetch, run_job
from tests.helpers import box_mask, noise_image, png_bytes, submit, wait_finished

pytestmark = pytest.mark.ml
REGION = {"x": 5, "y": 6, "width": 32, "height": 32}


def refine(dclient, model, image, **params):
    job = run_job(
        dclient,
        "generate",
        {"image": image},
        model=model,
        region=REGION,
        params={"prompt": "a lake", "seed": 3, **params},
    )
    return job, [fetch(dclient, r) for r in job["results"]]


@pytest.mark.parametrize("model", ["tiny-sdxl", "tiny-flux"])
def test_refine_redraws_the_image_it_is_given(dclient, model):
    image, other = noise_image(32, 32, seed=1), noise_image(32, 32, seed=2)
    job, (out,) = refine(dclient, model, image, strength=0.5)
    assert job["results"][0]["offset"] == {"x": 5, "y": 6}
    assert out.shape == image.shape and not np.array_equal(out, image)
    _, (from_other,) = refine(dclient, model, other, strength=0.5)
    assert not np.array_equal(out, from_other), "the result depends on the input pixels"


def test_refine_strength_0_keeps_and_1_replaces(dclient):
    image = noise_image(32, 32, seed=1)
    image[..., 3] = 200  # the layer's alpha survives a refine
    _, (kept,) = refine(dclient, "tiny-sdxl", image, strength=0.0)
    assert np.array_equal(kept, image)
    _, (refined,) = refine(dclient, "tiny-sdxl", image, strength=0.5)
    assert (refined[..., 3] == 200).all()
    _, (replaced,) = refine(dclient, "tiny-sdxl", image, strength=1.0)
    plain = run_job(
        dclient, "generate", model="tiny-sdxl", region=REGION,
        params={"prompt": "a lake", "seed": 3},
    )
    expected = fetch(dclient, plain["results"][0])
    assert np.array_equal(replaced, expected), "strength 1: the image plays no part"


def test_refine_shares_the_loaded_weights(dclient, dservices):
    refine(dclient, "tiny-sdxl", noise_image(32, 32, seed=1), strength=0.5)
    (model,) = [m.obj for m in dservices.cache.loaded() if m.entry.id == "tiny-sdxl"]
    sibling = model.pipeline_for("image2image")
    assert type(sibling).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert sibling.unet is model.pipe.unet and sibling.vae is model.pipe.vae


def test_generate_variations_each_report_their_seed(dclient):
    job, outs = refine(dclient, "tiny-sdxl", noise_image(32, 32, seed=4), strength=0.6, count=3)
    assert [r["seed"] for r in job["results"]] == [3, 4, 5]
    assert not np.array_equal(outs[0], outs[1])
    _, (single,) = refine(dclient, "tiny-sdxl", noise_image(32, 32, seed=4), strength=0.6, seed=5)
    assert np.array_equal(single, outs[2]), "variation n is the single run with its seed"


def test_inpaint_without_a_mask_refines_the_whole_image(dclient):
    image = noise_image(32, 32, seed=5)
    job = run_job(
        dclient, "inpaint", {"image": image}, model="tiny-sdxl-inpaint",
        params={"prompt": "fog", "strength": 0.5, "seed": 1, "count": 2},
    )
    assert [r["seed"] for r in job["results"]] == [1, 2]
    first, second = (fetch(dclient, r) for r in job["results"])
    assert first.shape == image.shape
    changed = (first != image).any(axis=2)
    assert changed[:4].any() and changed[-4:].any() and changed[:, :4].any()  # edges too
    assert not np.array_equal(first, second)
    kept = run_job(
        dclient, "inpaint", {"image": image}, model="tiny-sdxl-inpaint",
        params={"prompt": "fog", "strength": 0.0},
    )
    assert np.array_equal(fetch(dclient, kept["results"][0]), image)


def test_inpaint_low_strength_runs_the_steps_asked_for(dclient):
    """Strength 0.3 with 2 steps would schedule no step at all without stretching."""
    image = noise_image(48, 48, seed=6)
    mask = box_mask(48, 48, (8, 8, 40, 40))
    job = run_job(
        dclient, "inpaint", {"image": image, "mask": mask}, model="tiny-sdxl-inpaint",
        params={"prompt": "fog", "strength": 0.3, "steps": 2, "seed": 1},
    )
    out = fetch(dclient, job["results"][0])
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask > 0], image[mask > 0])
    assert job["progress"]["total"] >= 2


def test_refine_with_width_is_refused_and_replace_sizes_as_asked(dclient):
    job = run_job(
        dclient, "generate", {"image": noise_image(32, 32)}, model="tiny-sdxl",
        params={"prompt": "x", "width": 64, "height": 96},
    )
    assert (job["results"][0]["width"], job["results"][0]["height"]) == (64, 96)
    resp = submit(
        dclient, "generate", {"image": png_bytes(noise_image(32, 32))}, model="tiny-sdxl",
        params={"prompt": "x", "width": 64, "strength": 0.5},
    )
    assert resp.status_code == 202
    job = wait_finished(dclient, resp.get_json()["id"], timeout=60)
    assert job["state"] == "failed" and job["error"]["code"] == "params_conflict"
