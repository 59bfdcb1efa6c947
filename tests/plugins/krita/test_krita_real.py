"""The plugin inside Debian's real Krita 5.1 (kritarunner, offscreen) against a live server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from kra_file import Kra
from krita_helpers import KRITARUNNER_SCRIPTS, run_krita_gui, run_kritarunner
from PIL import Image

from aiedit.plugins_install import enable_krita_plugin, install_krita

pytestmark = pytest.mark.krita

SELECTION = (28, 18, 28, 20)  # x, y, width, height


def scene() -> np.ndarray:
    """A smooth gradient with a red block the inpaint should remove."""
    ys, xs = np.mgrid[0:64, 0:96]
    image = np.dstack([np.zeros_like(xs), 2 * xs, 3 * ys, np.full_like(xs, 255)]).astype(np.uint8)
    image[20:36, 30:54] = (250, 10, 10, 255)
    return image


def run_job(krita_home, tmp_path, server_url, operation, model, params=None,
            selection=SELECTION) -> dict:
    """Run ``aiedit.run`` in kritarunner on ``scene()`` and return its report."""
    pykrita = tmp_path / "pykrita"
    install_krita(pykrita, enable=False)
    source = tmp_path / "in.png"
    Image.fromarray(scene(), "RGBA").save(source)
    out = tmp_path / "out"
    out.mkdir()
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps({
        "image": str(source), "out_dir": str(out), "server_url": server_url,
        "operation": operation, "model": model, "params": params or {},
        "selection": list(selection) if selection else None}))
    proc = run_kritarunner(krita_home, [pykrita, KRITARUNNER_SCRIPTS], "krita_run_job", orders)
    report_path = out / "result.json"
    assert report_path.exists(), f"kritarunner wrote no report:\n{proc.stdout[-3000:]}"
    report = json.loads(report_path.read_text())
    assert report["error"] is None, report["error"]
    assert report["plugin_file"].startswith(str(pykrita)), report["plugin_file"]
    assert report["saved_kra"] and report["exported_png"]
    return report


def test_inpaint_from_selection_adds_a_masked_result_and_leaves_the_image(krita_home, tmp_path,
                                                                           live_server):
    report = run_job(krita_home, tmp_path, live_server.url, "inpaint", "classic-telea",
                     {"feather": 0})
    x, y, w, h = SELECTION
    [node] = report["nodes"]
    assert node["name"] == "inpaint · classic-telea" and node["type"] == "grouplayer"

    kra = Kra(tmp_path / "out" / "out.kra")
    names = [layer.name for layer in kra.layers()]
    assert names.index("inpaint · classic-telea") < names.index("Background"), names
    mask, result = kra.children("inpaint · classic-telea")
    assert mask.name.startswith("Selection mask")
    selected = np.zeros((64, 96), bool)
    selected[y:y + h, x:x + w] = True
    alpha = kra.pixels(mask)[..., 3]
    assert (alpha[selected] == 255).all() and (alpha[~selected] == 0).all(), \
        "the mask layer holds the selection"
    layer = kra.pixels(result)
    assert (layer[..., 3][selected] == 255).all(), "the result itself is not cut by the mask"
    red = (layer[..., 0] > 200) & (layer[..., 1] < 40)
    assert not red[selected].any(), "the red block was inpainted away"
    np.testing.assert_array_equal(kra.pixels(kra.layer("Background")), scene())

    exported = np.asarray(Image.open(tmp_path / "out" / "out.png").convert("RGBA"))
    np.testing.assert_array_equal(exported[~selected], scene()[~selected])
    np.testing.assert_array_equal(exported[selected], layer[selected])
    np.testing.assert_array_equal(kra.merged(), exported)


def test_outpaint_grows_the_canvas_and_keeps_the_image_in_place(krita_home, tmp_path,
                                                                live_server):
    report = run_job(krita_home, tmp_path, live_server.url, "outpaint", "classic-telea",
                     {"left": 8, "top": 4, "right": 2}, selection=None)
    assert report["size"] == [96 + 10, 64 + 4]
    [node] = report["nodes"]
    assert node["bounds"] == [0, 0, 106, 68]
    kra = Kra(tmp_path / "out" / "out.kra")
    background = kra.pixels(kra.layer("Background"))
    np.testing.assert_array_equal(background[4:, 8:104], scene())
    layer = kra.pixels(kra.layer(node["name"]))
    assert (layer[..., 3] == 255).all(), "the outpainted layer fills the grown canvas"


def test_gui_docker_is_created_and_generate_action_inserts_layer(krita_home, tmp_path,
                                                                 live_server):
    kritarc = krita_home / ".config" / "kritarc"
    pykrita = krita_home / ".local" / "share" / "krita" / "pykrita"
    install_krita(pykrita, kritarc=kritarc)
    smoke = Path(__file__).parent / "gui_smoke"
    shutil.copytree(smoke / "aiedit_smoke", pykrita / "aiedit_smoke")
    shutil.copy(smoke / "aiedit_smoke.desktop", pykrita)
    enable_krita_plugin(kritarc, "aiedit_smoke")
    with kritarc.open("a") as f:
        f.write(f"\n[aiedit]\nserver_url={live_server.url}\noperation=inpaint\n"
                "model=classic-telea\n")
    source = tmp_path / "in.png"
    Image.fromarray(scene(), "RGBA").save(source)
    out = tmp_path / "out"
    out.mkdir()
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps({"image": str(source), "selection": list(SELECTION),
                                  "soft": True, "out_dir": str(out)}))
    proc = run_krita_gui(krita_home, {"AIEDIT_SMOKE_ORDERS": str(orders)})
    report_path = out / "report.json"
    assert report_path.exists(), f"Krita wrote no report:\n{proc.stderr[-3000:]}"
    report = json.loads(report_path.read_text())
    assert report["error"] is None, report
    assert report["conflicts"] == []
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["dockers"]["count"] == 1 and steps["dockers"]["titles"] == ["aiedit"]
    assert steps["connected"]["model"] == "classic-telea"
    names = [layer["name"] for layer in report["layers"]]
    assert "inpaint · classic-telea" in names, report["layers"]
    layer = next(la for la in report["layers"] if la["name"] == "inpaint · classic-telea")
    assert layer["bounds"] == list(SELECTION)
    # the soft selection is the mask layer's alpha, and the user's selection is still there
    result, mask = layer["children"]
    assert mask["name"].startswith("Selection mask") and result["type"] == "paintlayer"
    w = SELECTION[2]
    ramp = [1 + 254 * i // (w - 1) for i in range(w)] * SELECTION[3]
    assert mask["values"][3::4] == ramp
    assert report["selection_after"] == ramp
    assert report["saved"]


@pytest.mark.ml
def test_gui_live_mode_follows_a_stroke_and_apply_makes_a_layer(krita_home, tmp_path,
                                                                tiny_server):
    """Krita's GUI with the docker: live mode against the tiny server renders the selection,
    follows a block painted by script, and "Apply live" copies the frame into a layer."""
    kritarc = krita_home / ".config" / "kritarc"
    pykrita = krita_home / ".local" / "share" / "krita" / "pykrita"
    install_krita(pykrita, kritarc=kritarc)
    smoke = Path(__file__).parent / "gui_smoke"
    shutil.copytree(smoke / "aiedit_smoke", pykrita / "aiedit_smoke")
    shutil.copy(smoke / "aiedit_smoke.desktop", pykrita)
    enable_krita_plugin(kritarc, "aiedit_smoke")
    with kritarc.open("a") as f:
        f.write(f"\n[aiedit]\nserver_url={tiny_server.url}\noperation=generate\n"
                "model=tiny-sdxl\nlive_interval_ms=200\n")
    source = tmp_path / "in.png"
    Image.fromarray(scene(), "RGBA").save(source)
    out = tmp_path / "out"
    out.mkdir()
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps({"image": str(source), "selection": list(SELECTION),
                                  "mode": "live", "out_dir": str(out)}))
    proc = run_krita_gui(krita_home, {"AIEDIT_SMOKE_ORDERS": str(orders)})
    report_path = out / "report.json"
    assert report_path.exists(), f"Krita wrote no report:\n{proc.stderr[-3000:]}"
    report = json.loads(report_path.read_text())
    assert report["error"] is None, report
    steps = [s["step"] for s in report["steps"]]
    assert "first frame" in steps and "followed stroke" in steps
    applied = report["applied"]
    assert applied["name"].startswith("live generate · a fox")
    assert applied["bounds"] == list(SELECTION)
    assert applied["equals_live"], {k: v for k, v in report.items() if k != "layers"}
    assert not report["live_left"] and applied["name"] in report["layers"]
