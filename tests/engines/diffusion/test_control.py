"""Control layers through the HTTP jobs API: a tiny SDXL ControlNet (grown from the tiny UNet
with diffusers' `ControlNetModel.from_unet`, saved in the HF cache layout, loaded by hub id with
the hub offline) steers generate and inpaint."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.engines.diffusion.test_jobs_api import fetch, run_job
from tests.helpers import box_mask, noise_image, png_bytes, submit

pytestmark = pytest.mark.ml
REGION = {"x": 0, "y": 0, "width": 32, "height": 32}


def canny_map(picture: np.ndarray) -> np.ndarray:
    edges = cv2.Canny(cv2.cvtColor(picture[..., :3], cv2.COLOR_RGB2GRAY), 100, 200)
    return np.dstack([edges] * 3 + [np.full(edges.shape, 255, np.uint8)])


def picture(size: int = 32) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    cv2.rectangle(img, (6, 6), (24, 20), (255, 255, 255), -1)
    cv2.circle(img, (20, 24), 6, (120, 200, 40), -1)
    return np.dstack([img, np.full((size, size), 255, np.uint8)])


def generate(dclient, files=None, control=None, **params):
    job = run_job(
        dclient, "generate", files, model="tiny-sdxl", region=REGION,
        params={"prompt": "a house", "seed": 11, **params,
                **({"control": control} if control is not None else {})},
    )
    return job, fetch(dclient, job["results"][0])


def test_a_control_map_steers_and_weight_0_is_no_control(dclient, dservices):
    _, plain = generate(dclient)
    item = {"kind": "canny", "input": "control0"}
    job, steered = generate(dclient, {"control0": canny_map(picture())}, [item])
    assert not np.array_equal(steered, plain), "the control changes the result"
    assert np.abs(steered.astype(int) - plain.astype(int)).mean() > 1.0
    _, weak = generate(dclient, {"control0": canny_map(picture())}, [{**item, "strength": 0.3}])
    assert not np.array_equal(weak, steered), "strength is the conditioning scale"
    _, off = generate(dclient, {"control0": canny_map(picture())}, [{**item, "strength": 0.0}])
    assert np.array_equal(off, plain), "weight 0 equals no control"
    (model,) = [m.obj for m in dservices.cache.loaded() if m.entry.id == "tiny-sdxl"]
    siblings = [type(p).__name__ for p in model._siblings.values()]
    assert "StableDiffusionXLControlNetPipeline" in siblings
    dservices.cache.evict("tiny-controlnet-sdxl")
    siblings = [type(p).__name__ for p in model._siblings.values()]
    assert "StableDiffusionXLControlNetPipeline" not in siblings, "evicted with its ControlNet"
    _, again = generate(dclient, {"control0": canny_map(picture())}, [item])
    assert np.array_equal(again, steered), "reloaded, it steers the same"


def test_start_and_end_limit_where_it_steers(dclient):
    item = {"kind": "canny", "input": "control0"}
    files = {"control0": canny_map(picture())}
    _, full = generate(dclient, files, [item])
    _, late = generate(dclient, files, [{**item, "start": 0.5}])
    assert not np.array_equal(full, late)


def test_preprocess_true_makes_the_map_from_a_picture(dclient):
    item = {"kind": "canny", "input": "control0"}
    _, from_map = generate(dclient, {"control0": canny_map(picture())}, [item])
    _, from_picture = generate(dclient, {"control0": picture()}, [{**item, "preprocess": True}])
    assert np.array_equal(from_map, from_picture)


def test_two_controls_and_a_refine_together(dclient):
    files = {"image": noise_image(32, 32, seed=3), "control0": canny_map(picture()),
             "control1": picture()}
    control = [{"kind": "canny", "input": "control0", "strength": 0.8},
               {"kind": "scribble", "input": "control1", "preprocess": True, "end": 0.6}]
    job, out = generate(dclient, files, control, strength=0.7)
    _, without = generate(dclient, {"image": files["image"]}, None, strength=0.7)
    assert not np.array_equal(out, without)


def test_inpaint_follows_a_control_inside_the_mask_only(dclient):
    image = noise_image(48, 48, seed=8)
    mask = box_mask(48, 48, (8, 8, 40, 40))
    files = {"image": image, "mask": mask, "control0": canny_map(picture(48))}
    params = {"prompt": "a door", "seed": 2, "feather": 0}
    base = run_job(dclient, "inpaint", {"image": image, "mask": mask},
                   model="tiny-sdxl-inpaint", params=params)
    steered = run_job(dclient, "inpaint", files, model="tiny-sdxl-inpaint",
                      params={**params, "control": [{"kind": "canny", "input": "control0"}]})
    a, b = fetch(dclient, base["results"][0]), fetch(dclient, steered["results"][0])
    assert np.array_equal(b[mask == 0], image[mask == 0])
    assert not np.array_equal(a[mask > 0], b[mask > 0])


@pytest.mark.parametrize(
    "files, control, model, code",
    [
        ({}, [{"kind": "canny", "input": "control0"}], "tiny-sdxl", "control_input_missing"),
        ({"control1": 32}, [], "tiny-sdxl", "control_input_unused"),
        ({"control0": 40}, [{"kind": "canny", "input": "control0"}], "tiny-sdxl",
         "control_size_mismatch"),
        ({"control0": 32}, [{"kind": "reference", "input": "control0"}], "tiny-flux",
         "control_unsupported"),
        ({"control0": 32}, [{"kind": "canny", "input": "control0"}], "tiny-flux",
         "no_controlnet"),
        ({"control0": 32}, [{"kind": "pose", "input": "control0"}], "tiny-sdxl",
         "no_controlnet"),
        ({"control0": 32}, [{"kind": "canny", "input": "control0", "start": 0.8, "end": 0.2}],
         "tiny-sdxl", "invalid_params"),
        ({"control0": 32}, [{"kind": "canny", "input": "control9"}], "tiny-sdxl",
         "invalid_params"),
    ],
)
def test_bad_controls_are_refused_before_queueing(dclient, files, control, model, code):
    parts = {name: png_bytes(canny_map(picture(size))) for name, size in files.items()}
    resp = submit(dclient, "generate", parts, model=model, region=REGION,
                  params={"prompt": "x", "control": control})
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == code, resp.get_json()


def test_flux_controlnet_is_named_in_the_refusal(dclient):
    resp = submit(dclient, "generate", {"control0": png_bytes(canny_map(picture()))},
                  model="tiny-flux", region=REGION,
                  params={"prompt": "x", "control": [{"kind": "canny", "input": "control0"}]})
    assert "aiedit models pull controlnet-union-flux" in resp.get_json()["message"]
