"""The plugin inside Debian's real Krita 5.1 (kritarunner, offscreen) against a live server."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import KRITARUNNER_SCRIPTS, run_kritarunner
from kra_file import Kra
from PIL import Image

from aiedit.plugins_install import install_krita

pytestmark = pytest.mark.krita

SELECTION = (28, 18, 28, 20)  # x, y, width, height


def scene() -> np.ndarray:
    """A smooth gradient with a red block the inpaint should remove."""
    ys, xs = np.mgrid[0:64, 0:96]
    image = np.dstack([np.zeros_like(xs), 2 * xs, 3 * ys, np.full_like(xs, 255)]).astype(np.uint8)
    image[20:36, 30:54] = (250, 10, 10, 255)
    return image


def run_job(krita_home, tmp_path, server_url) -> dict:
    pykrita = tmp_path / "pykrita"
    install_krita(pykrita, enable=False)
    source = tmp_path / "in.png"
    Image.fromarray(scene(), "RGBA").save(source)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_kritarunner(krita_home, [pykrita, KRITARUNNER_SCRIPTS], "krita_inpaint_job",
                           out, server_url, source, *SELECTION)
    report_path = out / "result.json"
    assert report_path.exists(), f"kritarunner wrote no report:\n{proc.stdout[-3000:]}"
    report = json.loads(report_path.read_text())
    assert report["error"] is None, report["error"]
    assert report["plugin_file"].startswith(str(pykrita)), report["plugin_file"]
    return report


def test_inpaint_from_selection_adds_masked_layer_at_the_selection(krita_home, tmp_path,
                                                                   live_server):
    report = run_job(krita_home, tmp_path, live_server.url)
    x, y, w, h = SELECTION
    [node] = report["nodes"]
    assert node["name"] == "inpaint · classic-telea"
    assert node["bounds"] == [x, y, w, h]
    assert report["saved_kra"] and report["exported_png"]

    kra = Kra(tmp_path / "out" / "out.kra")
    names = [layer.name for layer in kra.layers()]
    assert names.index("inpaint · classic-telea") < names.index("Background"), names
    layer = kra.pixels(kra.layer("inpaint · classic-telea"))
    selected = np.zeros(layer.shape[:2], bool)
    selected[y:y + h, x:x + w] = True
    assert (layer[..., 3][selected] == 255).all(), "the new layer covers the selection"
    assert (layer[..., 3][~selected] == 0).all(), "and nothing outside it"
    red = (layer[..., 0] > 200) & (layer[..., 1] < 40)
    assert not red[selected].any(), "the red block was inpainted away"
    np.testing.assert_array_equal(kra.pixels(kra.layer("Background")), scene())

    exported = np.asarray(Image.open(tmp_path / "out" / "out.png").convert("RGBA"))
    np.testing.assert_array_equal(exported[~selected], scene()[~selected])
    np.testing.assert_array_equal(exported[selected], layer[selected])
    np.testing.assert_array_equal(kra.merged(), exported)
