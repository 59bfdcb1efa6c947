"""Real AI jobs in real Krita (kritarunner): ``aiedit.run`` drives tiny random diffusion
pipelines on a live `aiedit serve` (the `tiny_server` fixture); the saved .kra and .png are
checked from outside Krita against the server's own results."""

from __future__ import annotations

import numpy as np
import pytest
from kra_file import Kra
from PIL import Image
from test_krita_real import SELECTION, run_job, scene

from tests.helpers import latest_job, result_pixels

pytestmark = [pytest.mark.krita, pytest.mark.ml]


def layer_names(kra: Kra) -> list[str]:
    """Top-level layer names (the document's selection is saved as a mask: left out)."""
    return [layer.name for layer in kra.layers() if layer.nodetype != "selectionmask"]


def test_generate_with_a_prompt_adds_a_layer_at_the_selection(krita_home, tmp_path,
                                                              tiny_server):
    report = run_job(krita_home, tmp_path, tiny_server.url, "generate", "tiny-sdxl",
                     {"prompt": "a red fox", "seed": 7})
    x, y, w, h = SELECTION
    [node] = report["nodes"]
    assert node["name"] == "generate · a red fox · seed 7"
    assert node["bounds"] == [x, y, w, h]
    (result,) = latest_job(tiny_server, "generate")["results"]
    assert result["offset"] == {"x": x, "y": y} and (result["width"], result["height"]) == (w, h)
    generated = result_pixels(tiny_server, result)

    kra = Kra(tmp_path / "out" / "out.kra")
    assert layer_names(kra) == [node["name"], "Background"]
    layer = kra.pixels(kra.layer(node["name"]))
    np.testing.assert_array_equal(layer[y:y + h, x:x + w], generated)
    inside = np.zeros(layer.shape[:2], bool)
    inside[y:y + h, x:x + w] = True
    assert (layer[..., 3][~inside] == 0).all(), "nothing outside the selection"
    np.testing.assert_array_equal(kra.pixels(kra.layer("Background")), scene())

    exported = np.asarray(Image.open(tmp_path / "out" / "out.png").convert("RGBA"))
    np.testing.assert_array_equal(exported[inside], generated.reshape(-1, 4))
    np.testing.assert_array_equal(exported[~inside], scene()[~inside])


def test_video_without_a_window_becomes_a_group_of_frame_layers(krita_home, tmp_path,
                                                                tiny_server):
    """kritarunner has no main window, where importAnimation crashes: the plugin falls back to
    a group holding one paint layer per frame."""
    report = run_job(krita_home, tmp_path, tiny_server.url, "video", "tiny-ltx-video",
                     {"prompt": "waves", "frames": 9, "fps": 8, "seed": 3}, selection=None)
    [node] = report["nodes"]
    assert node["type"] == "grouplayer"
    assert node["name"] == "video · waves · seed 3"
    job = latest_job(tiny_server, "video")
    frames = [r for r in job["results"] if r["kind"] == "image"]
    assert len(frames) == 9

    kra = Kra(tmp_path / "out" / "out.kra")
    assert layer_names(kra) == [node["name"], "Background"]
    children = kra.children(node["name"])
    assert [c.name for c in children] == [f"frame {n:03d}" for n in range(9, 0, -1)]
    for child, result in ((children[-1], frames[0]), (children[0], frames[-1])):
        np.testing.assert_array_equal(kra.pixels(child), result_pixels(tiny_server, result),
                                      f"{child.name} holds its frame, pixel for pixel")
    exported = np.asarray(Image.open(tmp_path / "out" / "out.png").convert("RGBA"))
    np.testing.assert_array_equal(exported, result_pixels(tiny_server, frames[-1]))
