"""Preprocess (control maps) without weights: Canny equals OpenCV's own, scribble thickens it;
a kind is served only by a model that makes it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.helpers import decode_png, png_bytes, submit, wait_finished


def photo(width: int = 96, height: int = 72) -> np.ndarray:
    """Shapes with edges (noise alone would make Canny light up everywhere)."""
    img = np.full((height, width, 3), 40, np.uint8)
    cv2.rectangle(img, (10, 8), (50, 40), (200, 180, 90), -1)
    cv2.circle(img, (70, 45), 18, (30, 150, 240), -1)
    cv2.line(img, (0, height - 5), (width, 10), (255, 255, 255), 2)
    return np.dstack([img, np.full((height, width), 255, np.uint8)])


def preprocess(client, image, **params):
    resp = submit(client, "preprocess", {"image": png_bytes(image)}, params=params)
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"])
    assert job["state"] == "succeeded", job
    (result,) = job["results"]
    return job, decode_png(client.get(result["url"]).data)


@pytest.mark.parametrize("low,high", [(100, 200), (20, 60)])
def test_canny_equals_opencv(client, low, high):
    image = photo()
    params = {"kind": "canny"} if (low, high) == (100, 200) else {"kind": "canny", "low": low,
                                                                    "high": high}
    job, out = preprocess(client, image, **params)
    assert job["model"] == "classic-canny"
    expected = cv2.Canny(cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY), low, high)
    assert out.shape == image.shape
    for channel in range(3):
        assert np.array_equal(out[..., channel], expected)
    assert (out[..., 3] == 255).all() and expected.any()


def test_scribble_is_bold_strokes_over_the_edges(client):
    image = photo()
    job, thin = preprocess(client, image, kind="scribble", thickness=1)
    assert job["model"] == "classic-scribble"
    _, bold = preprocess(client, image, kind="scribble", thickness=5)
    assert set(np.unique(bold[..., 0])) == {0, 255}
    assert (bold[..., 0][thin[..., 0] > 0] == 255).all(), "bold strokes cover the thin ones"
    assert (bold[..., 0] > 0).sum() > 2 * (thin[..., 0] > 0).sum()


@pytest.mark.parametrize(
    "request_, code",
    [
        ({"params": {"kind": "canny", "low": 250, "high": 100}}, "invalid_params"),
        ({"params": {"kind": "x-ray"}}, "invalid_params"),
        ({"params": {}}, "invalid_params"),
        ({"params": {"kind": "depth"}, "model": "classic-canny"}, "model_does_not_fit"),
        ({"params": {"kind": "depth"}}, "no_model"),  # no depth detector installed here
    ],
)
def test_bad_preprocess_requests_are_refused_before_queueing(client, request_, code):
    resp = submit(client, "preprocess", {"image": png_bytes(photo())}, **request_)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == code
    assert client.get("/v1/jobs").get_json() == []
