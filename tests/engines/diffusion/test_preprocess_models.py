"""Preprocess with detector models (depth, line art): tiny random weights in the HF cache layout,
loaded by hub id with the hub offline through the engine's real loading code."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.engines.diffusion.test_jobs_api import fetch, run_job
from tests.fixtures import tiny_diffusion
from tests.helpers import noise_image, png_bytes, submit, wait_finished

pytestmark = pytest.mark.ml


def test_depth_map_is_what_the_transformers_model_gives(dclient, tiny_hub):
    from PIL import Image
    from transformers import pipeline

    image = noise_image(50, 40, seed=2)
    job = run_job(dclient, "preprocess", {"image": image}, params={"kind": "depth"})
    assert job["model"] == "tiny-depth-anything", "the default for depth is the depth model"
    out = fetch(dclient, job["results"][0])
    assert out.shape == (40, 50, 4)
    snapshot = tiny_hub / "models--tiny--depth-anything" / "snapshots" / tiny_diffusion.REVISION
    direct = pipeline("depth-estimation", model=str(snapshot), device="cpu")
    expected = np.asarray(direct(Image.fromarray(image[..., :3]))["depth"].convert("L"))
    assert np.array_equal(out[..., 0], expected)
    assert np.array_equal(out[..., 0], out[..., 2]) and out[..., 0].std() > 0


def test_lineart_map_is_drawn_by_the_generator(dclient):
    image = noise_image(48, 32, seed=3)
    job = run_job(
        dclient, "preprocess", {"image": image}, params={"kind": "lineart", "resolution": 64}
    )
    assert job["model"] == "tiny-lineart"
    out = fetch(dclient, job["results"][0])
    assert out.shape == (32, 48, 4) and out[..., :3].std() > 0
    coarse = run_job(
        dclient, "preprocess", {"image": image},
        params={"kind": "lineart", "resolution": 64, "coarse": True},
    )
    assert not np.array_equal(fetch(dclient, coarse["results"][0]), out), "its own weights"


def test_a_detector_missing_offline_fails_with_the_pull_command(dclient, scratch_hub):
    shutil.rmtree(scratch_hub / "models--tiny--lineart")
    resp = submit(dclient, "preprocess", {"image": png_bytes(noise_image(32, 32))},
                  model="tiny-lineart", params={"kind": "lineart"})
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(dclient, resp.get_json()["id"], timeout=120)
    assert job["state"] == "failed" and job["error"]["code"] == "model_not_available"
    assert "aiedit models pull tiny-lineart" in job["error"]["message"]


def test_pose_skeleton_is_drawn_at_the_model_keypoints(dclient, tiny_hub):
    import torch
    from PIL import Image
    from transformers import AutoProcessor, VitPoseForPoseEstimation

    image = noise_image(48, 64, seed=4)
    job = run_job(dclient, "preprocess", {"image": image},
                  params={"kind": "pose", "threshold": 0.0})
    assert job["model"] == "tiny-vitpose"
    out = fetch(dclient, job["results"][0])
    assert out.shape == (64, 48, 4) and out[..., :3].any()
    snapshot = tiny_hub / "models--tiny--vitpose" / "snapshots" / tiny_diffusion.REVISION
    processor = AutoProcessor.from_pretrained(snapshot)
    model = VitPoseForPoseEstimation.from_pretrained(snapshot).eval()
    boxes = [[[0, 0, 48, 64]]]
    with torch.inference_mode():
        found = model(**processor(Image.fromarray(image[..., :3]), boxes=boxes,
                                  return_tensors="pt"))
    keypoints = processor.post_process_pose_estimation(found, boxes=boxes)[0][0]["keypoints"]
    for x, y in keypoints.numpy().round().astype(int):
        if 0 <= x < 48 and 0 <= y < 64:
            assert out[y, x, :3].any(), f"keypoint ({x}, {y}) is drawn"
    strict = run_job(dclient, "preprocess", {"image": image},
                     params={"kind": "pose", "threshold": 1.0})
    assert not fetch(dclient, strict["results"][0])[..., :3].any(), "nothing that certain"
