"""Reference pictures through the HTTP jobs API: a tiny IP-Adapter for the tiny SDXL UNet (laid
out like h94/IP-Adapter, with its own tiny CLIP image encoder, loaded by hub id with the hub
offline) steers generate and inpaint as a `control` item of kind `reference`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.engines.diffusion.test_control import canny_map, picture
from tests.engines.diffusion.test_jobs_api import fetch, run_job
from tests.helpers import box_mask, noise_image, png_bytes, submit

pytestmark = pytest.mark.ml
REGION = {"x": 0, "y": 0, "width": 32, "height": 32}
REFERENCE = {"kind": "reference", "input": "control0"}


def generate(dclient, files=None, control=None, **params):
    job = run_job(
        dclient, "generate", files, model="tiny-sdxl", region=REGION,
        params={"prompt": "a house", "seed": 11, **params,
                **({"control": control} if control is not None else {})},
    )
    return fetch(dclient, job["results"][0])


def differ(a, b) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_a_reference_steers_and_taking_it_out_restores_the_base_model(dclient, dservices):
    plain = generate(dclient)
    look = noise_image(48, 40, seed=4)  # any size: the image encoder takes its own crop
    steered = generate(dclient, {"control0": look}, [REFERENCE])
    assert differ(steered, plain) > 1.0, "the reference changes the result"
    other = generate(dclient, {"control0": picture(64)}, [REFERENCE])
    assert not np.array_equal(other, steered), "another picture steers elsewhere"
    weak = generate(dclient, {"control0": look}, [{**REFERENCE, "strength": 0.3}])
    assert not np.array_equal(weak, steered), "strength is the adapter's scale"
    off = generate(dclient, {"control0": look}, [{**REFERENCE, "strength": 0.0}])
    assert np.array_equal(off, plain), "strength 0 equals no reference"
    assert np.array_equal(generate(dclient), plain), "a job without it after one with it"
    assert np.array_equal(generate(dclient, {"control0": look}, [REFERENCE]), steered), \
        "loaded again, it steers the same"
    (model,) = [m.obj for m in dservices.cache.loaded() if m.entry.id == "tiny-sdxl"]
    (adapter,) = [m.obj for m in dservices.cache.loaded() if m.entry.id == "tiny-ip-adapter-sdxl"]
    assert model.holds_ip_adapter(adapter)
    dservices.cache.evict("tiny-ip-adapter-sdxl")
    assert model._ip_adapter is None, "evicted: the pipeline lets it go"
    assert np.array_equal(generate(dclient), plain)


def test_start_and_end_limit_where_the_reference_steers(dclient):
    files = {"control0": noise_image(32, 32, seed=4)}
    full = generate(dclient, files, [REFERENCE])
    late = generate(dclient, files, [{**REFERENCE, "start": 0.5}])
    assert not np.array_equal(full, late)


def test_a_reference_beside_a_control_map(dclient):
    files = {"control0": canny_map(picture()), "control1": noise_image(32, 32, seed=4)}
    canny = {"kind": "canny", "input": "control0"}
    only_map = generate(dclient, {"control0": files["control0"]}, [canny])
    both = generate(dclient, files, [canny, {**REFERENCE, "input": "control1"}])
    assert differ(both, only_map) > 1.0
    assert np.array_equal(generate(dclient, {"control0": files["control0"]}, [canny]), only_map)


def test_inpaint_takes_the_reference_inside_the_mask_only(dclient):
    image = noise_image(48, 48, seed=8)
    mask = box_mask(48, 48, (8, 8, 40, 40))
    params = {"prompt": "a door", "seed": 2, "feather": 0}
    base = run_job(dclient, "inpaint", {"image": image, "mask": mask},
                   model="tiny-sdxl-inpaint", params=params)
    steered = run_job(dclient, "inpaint",
                      {"image": image, "mask": mask, "control0": noise_image(32, 32, seed=4)},
                      model="tiny-sdxl-inpaint", params={**params, "control": [REFERENCE]})
    a, b = fetch(dclient, base["results"][0]), fetch(dclient, steered["results"][0])
    assert np.array_equal(b[mask == 0], image[mask == 0])
    assert not np.array_equal(a[mask > 0], b[mask > 0])


@pytest.mark.parametrize(
    "control, model, code",
    [
        ([REFERENCE], "tiny-flux", "control_unsupported"),
        ([{**REFERENCE, "model": "tiny-controlnet-sdxl"}], "tiny-sdxl", "unknown_model"),
        ([{**REFERENCE, "model": "no-such-adapter"}], "tiny-sdxl", "unknown_model"),
        ([REFERENCE, {**REFERENCE, "input": "control1"}], "tiny-sdxl",
         "control_reference_repeated"),
    ],
)
def test_bad_references_are_refused_before_queueing(dclient, control, model, code):
    parts = {f"control{i}": png_bytes(picture()) for i in range(len(control))}
    before = len(dclient.get("/v1/jobs?page_size=100").get_json())
    resp = submit(dclient, "generate", parts, model=model, region=REGION,
                  params={"prompt": "x", "control": control})
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == code, resp.get_json()
    assert len(dclient.get("/v1/jobs?page_size=100").get_json()) == before


def test_models_list_the_ip_adapter_with_its_base(dclient):
    models = {m["id"]: m for m in dclient.get("/v1/models").get_json()["models"]}
    adapter = models["tiny-ip-adapter-sdxl"]
    assert (adapter["engine"], adapter["base"], adapter["installed"]) == \
        ("ip_adapter", "sdxl", True)
