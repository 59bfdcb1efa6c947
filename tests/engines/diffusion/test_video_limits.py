"""Video jobs are bounded before they are queued (every frame at the layer's size counts against
`max_output_pixels`), and their full-size frames go to disk and to ffmpeg as they are made."""

from __future__ import annotations

import os

import numpy as np
import pytest

from aiedit.app import create_app, services_of
from aiedit.config import Config
from aiedit.ops.video import frame_file, most_frames
from tests.engines.diffusion.conftest import TINY_CATALOG
from tests.helpers import decode_png, noise_image, png_bytes, submit, wait_finished

pytestmark = pytest.mark.ml
IMAGE = noise_image(40, 30, seed=3)


@pytest.fixture
def small_limit_app(tmp_path, tiny_hub):
    """Room for exactly 9 frames of 40 x 30."""
    config = Config(data_dir=tmp_path / "data", testing=True, catalog_file=str(TINY_CATALOG),
                    devices=["cpu"], max_output_pixels=9 * 40 * 30)
    app = create_app(config)
    yield app
    services_of(app).stop()


def video(client, frames: int):
    return submit(client, "video", {"image": png_bytes(IMAGE)}, model="tiny-ltx-video",
                  params={"prompt": "waves", "frames": frames, "fps": 8})


def test_a_clip_over_the_output_limit_is_refused_before_it_is_queued(small_limit_app):
    client = small_limit_app.test_client()
    resp = video(client, 17)
    assert resp.status_code == 422, resp.get_json()
    body = resp.get_json()
    assert body["code"] == "output_too_large"
    assert "17 frames" in body["message"] and "40x30" in body["message"]
    assert client.get("/v1/jobs").get_json() == []
    assert not list((services_of(small_limit_app).config.blob_dir).iterdir())


def test_a_clip_within_the_limit_runs_and_its_frames_match_the_mp4(small_limit_app):
    client = small_limit_app.test_client()
    resp = video(client, 9)
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"], timeout=240)
    assert job["state"] == "succeeded", job
    *frames, clip = job["results"]
    assert len(frames) == clip["frames"] == 9
    folder = services_of(small_limit_app).blobs.job_dir(job["id"])
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".tmp")]
    import imageio_ffmpeg

    path = folder / "clip.mp4"
    path.write_bytes(client.get(clip["url"]).data)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    decoded = [np.frombuffer(f, np.uint8).reshape(30, 40, 3) for f in reader]
    assert meta["size"] == (40, 30) and len(decoded) == 9
    stored = [decode_png(client.get(f["url"]).data)[..., :3].astype(int) for f in frames]
    for i in (0, 4, 8):  # each MP4 frame is closest to the frame stored at its index
        errors = [np.abs(decoded[i].astype(int) - s).mean() for s in stored]
        assert int(np.argmin(errors)) == i, errors


def test_most_frames_bounds_the_rounding_of_every_video_model():
    for wanted in range(2, 258):
        for multiple in (4, 8):
            rounded = max(1, round((wanted - 1) / multiple)) * multiple + 1
            assert rounded <= most_frames(wanted)


def test_frames_live_in_a_file_that_leaves_nothing_behind(tmp_path):
    frames = frame_file(tmp_path, 3, 20, 10)
    assert isinstance(frames, np.memmap) and frames.shape == (3, 20, 10, 4)
    frames[1] = 7
    assert int(frames[1].sum()) == 7 * 20 * 10 * 4 and int(frames[0].sum()) == 0
    assert os.listdir(tmp_path) == [], "the backing file must be unlinked at once"
