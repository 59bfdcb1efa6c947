"""Every pipeline class of the built-in catalog, at tiny scale, through the HTTP jobs API."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import box_mask, decode_png, noise_image, png_bytes, submit, wait_finished

pytestmark = pytest.mark.ml
TIMEOUT = 240.0


def run_job(client, operation, files=None, **request):
    resp = submit(client, operation, {k: png_bytes(v) for k, v in (files or {}).items()}, **request)
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"], timeout=TIMEOUT)
    assert job["state"] == "succeeded", job
    return job


def fetch(client, result) -> np.ndarray:
    resp = client.get(result["url"])
    assert resp.status_code == 200
    return decode_png(resp.data)


@pytest.mark.parametrize("model", ["tiny-sdxl", "tiny-flux", "tiny-qwen-image"])
def test_generate_fills_the_region_and_reports_the_seed(dclient, model):
    job = run_job(
        dclient,
        "generate",
        model=model,
        params={"prompt": "a red fox", "seed": 7},
        region={"x": 10, "y": 20, "width": 48, "height": 40},
    )
    (result,) = job["results"]
    assert (result["width"], result["height"]) == (48, 40)
    assert result["offset"] == {"x": 10, "y": 20}
    assert result["seed"] == 7
    pixels = fetch(dclient, result)
    assert pixels.shape == (40, 48, 4) and pixels[..., :3].std() > 0


def test_generate_picks_and_reports_a_seed_and_the_same_seed_repeats(dclient):
    request = {
        "model": "tiny-sdxl",
        "params": {"prompt": "a boat", "count": 2},
        "region": {"x": 0, "y": 0, "width": 32, "height": 32},
    }
    first = run_job(dclient, "generate", **request)
    seeds = [r["seed"] for r in first["results"]]
    assert all(isinstance(s, int) for s in seeds) and seeds[0] != seeds[1]
    again = run_job(
        dclient, "generate", **{**request, "params": {"prompt": "a boat", "seed": seeds[0]}}
    )
    assert np.array_equal(fetch(dclient, again["results"][0]), fetch(dclient, first["results"][0]))


def test_edit_semantic_with_a_reference_image(dclient):
    image = noise_image(48, 32, seed=1)
    job = run_job(
        dclient,
        "edit",
        {"image": image, "reference": noise_image(32, 32, seed=2)},
        model="tiny-qwen-image-edit-plus",
        params={"prompt": "make it snow", "working_resolution": 256},
    )
    (result,) = job["results"]
    out = fetch(dclient, result)
    assert out.shape == image.shape and not np.array_equal(out, image)


def test_edit_appearance_changes_only_the_selection(dclient):
    image = noise_image(64, 48, seed=3)
    mask = box_mask(64, 48, (16, 8, 48, 40))
    job = run_job(
        dclient,
        "edit",
        {"image": image, "mask": mask},
        model="tiny-flux-kontext",
        params={"prompt": "turn it blue", "mode": "appearance", "working_resolution": 256},
    )
    out = fetch(dclient, job["results"][0])
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask > 0], image[mask > 0])


def test_edit_text_mode_asks_for_the_new_text_and_changes_only_the_selection(
    dclient, monkeypatch
):
    import functools

    import diffusers

    image = noise_image(32, 32, seed=4)
    mask = box_mask(32, 32, (8, 10, 24, 20))
    resp = submit(
        dclient,
        "edit",
        {"image": png_bytes(image)},
        model="tiny-instruct-pix2pix",
        params={"prompt": "the shop sign", "mode": "text"},
    )
    assert resp.status_code == 422, "refused before anything is queued"
    assert resp.get_json()["code"] == "text_required"

    received = []
    pipeline = diffusers.StableDiffusionInstructPix2PixPipeline
    real_call = pipeline.__call__

    @functools.wraps(real_call)
    def recording_call(self, *args, **kwargs):  # the real pipeline runs; we only listen
        received.append(kwargs.get("prompt"))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(pipeline, "__call__", recording_call)
    job = run_job(
        dclient,
        "edit",
        {"image": image, "mask": mask},
        model="tiny-instruct-pix2pix",
        params={
            "prompt": "the shop sign",
            "mode": "text",
            "text": 'OPEN "24h"',
            "working_resolution": 256,
        },
    )
    (prompt,) = received
    assert prompt.startswith("the shop sign. ")
    assert 'Replace the text with "OPEN \u201d24h\u201d"' in prompt
    assert "Keep the original font" in prompt
    out = fetch(dclient, job["results"][0])
    assert out.shape == image.shape
    assert np.array_equal(out[mask == 0], image[mask == 0]), "changed outside the selection"
    assert not np.array_equal(out[mask > 0], image[mask > 0]), "the selection did not change"


@pytest.mark.parametrize(
    "model", ["tiny-sdxl-inpaint", "tiny-flux-fill", "tiny-qwen-image-edit-inpaint"]
)
def test_inpaint_leaves_pixels_outside_the_mask_bit_identical(dclient, model):
    image = noise_image(96, 80, seed=5)
    mask = box_mask(96, 80, (40, 30, 64, 52))
    job = run_job(
        dclient,
        "inpaint",
        {"image": image, "mask": mask},
        model=model,
        region={"x": 100, "y": 50, "width": 96, "height": 80},
        params={"prompt": "a window", "context_margin": 8, "feather": 4},
    )
    (result,) = job["results"]
    assert result["offset"] == {"x": 100, "y": 50}
    out = fetch(dclient, result)
    assert out.shape == image.shape
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask > 0], image[mask > 0])


def test_outpaint_extends_the_canvas_and_reports_the_new_offset(dclient):
    image = noise_image(40, 32, seed=6)
    job = run_job(
        dclient,
        "outpaint",
        {"image": image},
        model="tiny-sdxl-inpaint",
        region={"x": 100, "y": 100, "width": 40, "height": 32},
        params={"left": 8, "top": 4, "right": 16, "bottom": 0, "feather": 4},
    )
    (result,) = job["results"]
    assert (result["width"], result["height"]) == (64, 36)
    assert result["offset"] == {"x": 92, "y": 96}
    out = fetch(dclient, result)
    assert (out[..., 3] == 255).all()
    inner = out[4:36, 8:48]
    assert np.array_equal(inner[4:-4, 4:-4], image[4:-4, 4:-4])  # beyond the feather band


@pytest.mark.parametrize("model", ["tiny-ltx-video", "tiny-wan-i2v"])
def test_video_returns_frames_and_an_mp4(dclient, model):
    image = noise_image(40, 30, seed=7)
    job = run_job(
        dclient,
        "video",
        {"image": image},
        model=model,
        params={"prompt": "waves", "frames": 9, "fps": 8},
    )
    *frames, video = job["results"]
    assert video["kind"] == "video" and video["frames"] == len(frames) == 9
    assert (video["width"], video["height"]) == (40, 30)
    assert all(f["kind"] == "image" and (f["width"], f["height"]) == (40, 30) for f in frames)
    assert fetch(dclient, frames[4]).shape == (30, 40, 4)
    mp4 = dclient.get(video["url"] + "?format=mp4")
    assert mp4.status_code == 200 and mp4.data[4:8] == b"ftyp"


def test_a_second_job_on_a_warm_model_does_not_reload_it(dclient, dservices):
    request = {
        "model": "tiny-flux",
        "params": {"prompt": "a cup", "seed": 1},
        "region": {"x": 0, "y": 0, "width": 32, "height": 32},
    }
    run_job(dclient, "generate", **request)
    loads = dservices.cache.loads
    run_job(dclient, "generate", **request)
    assert dservices.cache.loads == loads


def test_cancel_stops_a_running_job_at_its_next_step(dclient):
    resp = submit(
        dclient,
        "generate",
        model="tiny-sdxl",
        params={"prompt": "a long one", "steps": 150},
        region={"x": 0, "y": 0, "width": 64, "height": 64},
    )
    job_id = resp.get_json()["id"]
    job = resp.get_json()
    while not (
        job["state"] == "running"
        and job["progress"]["stage"] == "denoising"
        and job["progress"]["step"] >= 1
    ):
        job = dclient.get(f"/v1/jobs/{job_id}?wait=5").get_json()
        assert job["state"] in ("queued", "running"), job
    assert job["progress"]["total"] == 150
    assert dclient.delete(f"/v1/jobs/{job_id}").status_code == 202
    job = wait_finished(dclient, job_id, timeout=TIMEOUT)
    assert job["state"] == "canceled"
    assert job["progress"]["step"] < 150


def test_a_model_missing_offline_fails_with_the_pull_command(dclient):
    resp = submit(
        dclient,
        "generate",
        model="tiny-not-downloaded",
        params={"prompt": "x"},
        region={"x": 0, "y": 0, "width": 32, "height": 32},
    )
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(dclient, resp.get_json()["id"], timeout=TIMEOUT)
    assert job["state"] == "failed"
    assert job["error"]["code"] == "model_not_available"
    assert "aiedit models pull tiny-not-downloaded" in job["error"]["message"]


def test_models_list_shows_download_progress(dclient, dservices):
    dservices.downloads.update("tiny-not-downloaded", 300, 1200)
    models = {m["id"]: m for m in dclient.get("/v1/models").get_json()["models"]}
    assert models["tiny-sdxl"]["installed"] is True
    assert models["tiny-not-downloaded"]["installed"] is False
    assert models["tiny-not-downloaded"]["download"] == {
        "state": "downloading",
        "bytes_done": 300,
        "bytes_total": 1200,
    }


def test_appearance_edit_without_a_mask_is_refused_at_once(dclient):
    resp = submit(
        dclient,
        "edit",
        {"image": png_bytes(noise_image(32, 32, seed=5))},
        model="tiny-instruct-pix2pix",
        params={"prompt": "make it blue", "mode": "appearance"},
    )
    assert resp.status_code == 422
    assert resp.get_json()["code"] == "mask_required"
