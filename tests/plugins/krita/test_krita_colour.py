"""Colour, masks and geometry of results in Debian's real Krita 5.1 (kritarunner, offscreen)
against a live server: documents in Adobe RGB, Rec. 2020 and CMYK round trip through the
server's sRGB; a soft selection becomes an editable mask; outpaints applied in turn line up;
a cropped or closed document gives its message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from krita_helpers import KRITARUNNER_SCRIPTS, run_kritarunner

from aiedit.plugins_install import install_krita
from tests.helpers import latest_job, result_pixels

pytestmark = pytest.mark.krita

W, H = 96, 64
SELECTION = [20, 12, 40, 30]


def run_scenario(krita_home, tmp_path, server_url, scenario, **orders) -> dict:
    pykrita = tmp_path / "pykrita"
    install_krita(pykrita, enable=False)
    out = tmp_path / "out"
    out.mkdir()
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(dict(orders, scenario=scenario, out_dir=str(out),
                                    server_url=server_url)))
    proc = run_kritarunner(krita_home, [pykrita, KRITARUNNER_SCRIPTS], "krita_scenarios", path)
    report_path = out / "result.json"
    assert report_path.exists(), f"kritarunner wrote no report:\n{proc.stdout[-3000:]}"
    report = json.loads(report_path.read_text())
    assert report["error"] is None, report["error"]
    return report


def srgb8(linear16: np.ndarray) -> np.ndarray:
    v = linear16 / 65535
    return 255 * np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


def channels(values: list, depth: str, model: str = "RGBA") -> np.ndarray:
    dtype = np.uint16 if depth == "U16" else np.uint8
    data = np.frombuffer(bytes(values), np.uint8).view(dtype)
    return data.reshape(-1, 5 if model == "CMYKA" else 4).astype(np.int64)


@pytest.mark.parametrize("space", [
    ("RGBA", "U16", "ClayRGB-elle-V2-g22.icc"),       # Adobe RGB (1998) compatible
    ("RGBA", "U16", "Rec2020-elle-V4-g10.icc"),        # Rec. 2020, linear
    ("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc"),
], ids=["adobe-rgb-16", "rec2020-linear-16", "srgb-8"])
def test_round_trip_through_the_server_keeps_every_value(krita_home, tmp_path, live_server,
                                                         space):
    report = run_scenario(krita_home, tmp_path, live_server.url, "colour_round_trip",
                          space=list(space), selection=SELECTION)
    model, depth, profile = space
    assert report["doc"] == list(space)
    assert report["layer_space"] == list(space), "the result layer is in the document's space"
    original = channels(report["original"], depth)
    written = channels(report["written"], depth)
    one_code = 257 if depth == "U16" else 1
    if "g10" in profile:  # linear light: one 8-bit code value of a perceptual (sRGB) curve
        original, written, one_code = srgb8(original), srgb8(written), 1.0
    assert np.abs(written - original).max() <= one_code, \
        "sent, returned and written back within one 8-bit code value"

    # what the server received is Krita's own conversion of the document to sRGB
    (result,) = latest_job(live_server, "inpaint")["results"]
    if depth == "U16" and "g10" not in profile:
        assert result.get("depth") == 16, "a 16-bit document is sent at 16 bits"
        assert np.abs(written - original).max() <= 16, "16 bits end to end: no 8-bit step"
    received = result_pixels(live_server, result).reshape(-1, 4).astype(np.int64)
    if received.max() > 255:  # a 16-bit result, as 8-bit for the comparison
        received = np.rint(received / 257).astype(np.int64)
    krita_srgb = np.array(report["krita_srgb8"]).reshape(-1, 4)
    assert np.abs(received - krita_srgb).max() <= 1
    if profile != "sRGB-elle-V2-srgbtrc.icc":
        scale = 257 if depth == "U16" else 1
        naive = channels(report["original"], depth)[:, [2, 1, 0, 3]] // scale
        assert np.abs(received - naive)[:, :3].max() > 12, "the profile was not ignored"


def test_cmyk_document_is_converted_by_krita_and_the_result_stays_cmyk(krita_home, tmp_path,
                                                                       live_server):
    report = run_scenario(krita_home, tmp_path, live_server.url, "colour_round_trip",
                          space=["CMYKA", "U8", ""], selection=SELECTION)
    assert report["doc"][:2] == ["CMYKA", "U8"]
    assert report["layer_space"] == report["doc"]
    original = channels(report["original"], "U8", "CMYKA")
    written = channels(report["written"], "U8", "CMYKA")
    # CMYK -> sRGB -> CMYK is not exact (black generation), but the colours stay close
    assert np.abs(written - original).mean() < 6


def test_soft_selection_becomes_an_editable_mask_with_its_values(krita_home, tmp_path,
                                                                 live_server):
    report = run_scenario(krita_home, tmp_path, live_server.url, "soft_mask",
                          selection=SELECTION)
    node = report["node"]
    assert node["type"] == "grouplayer" and node["name"] == "inpaint · classic-telea"
    result, mask = node["children"]
    assert result["type"] == "paintlayer" and result["blending"] == "normal"
    assert mask["blending"] == "destination-in"
    assert report["mask_alpha"] == report["selection"], "the mask holds the soft selection"
    assert len(set(report["selection"])) == SELECTION[2], "the selection really was soft"
    assert report["background_unchanged"]
    assert report["saved_kra"]


def test_two_outpaints_applied_in_turn_land_where_expected(krita_home, tmp_path, live_server):
    report = run_scenario(krita_home, tmp_path, live_server.url, "two_outpaints",
                          params=[{"left": 8, "top": 4}, {"right": 10, "bottom": 6}])
    assert report["sizes"] == [[W + 8, H + 4], [W + 18, H + 10]]
    first, second = report["nodes"]
    assert first["bounds"] == [0, 0, W + 8, H + 4]
    assert second["bounds"] == [8, 4, W + 10, H + 6], "the second keeps the original's origin"
    size = (H + 10, W + 18, 4)
    original = np.frombuffer(bytes(report["original"]), np.uint8).reshape(H, W, 4)
    background = np.frombuffer(bytes(report["background"]), np.uint8).reshape(size)
    np.testing.assert_array_equal(background[4:4 + H, 8:8 + W], original)
    for values in report["layers"].values():
        layer = np.frombuffer(bytes(values), np.uint8).reshape(size)
        np.testing.assert_array_equal(layer[4:4 + H, 8:8 + W], original,
                                      "each result holds the image where it is")


def test_cropped_or_closed_document_gives_the_message_and_a_choice(krita_home, tmp_path,
                                                                   live_server):
    report = run_scenario(krita_home, tmp_path, live_server.url, "document_changes",
                          selection=SELECTION)
    assert report["cropped"].startswith(f"The canvas changed from {W}\u00d7{H} to "
                                        f"{W - 8}\u00d7{H - 4} while the job ran")
    assert report["layers_after_refusal"] == report["layers_before"], "nothing was inserted"
    assert report["forced"]["name"] == "inpaint · classic-telea"
    assert report["closed"].startswith("The document \u201cscenario\u201d this result belongs "
                                       "to was closed")
    assert report["new_document"]["type"] == "paintlayer"


def test_16bit_gradient_upscaled_keeps_its_levels(krita_home, tmp_path, live_server):
    """The issue's measure, on a narrow strip: 2048 rows of a 16-bit gradient upscaled x2 keep
    at least 1,024 distinct levels down a 4,096-row column (8-bit transport leaves 256)."""
    report = run_scenario(krita_home, tmp_path, live_server.url, "deep_upscale", size=[8, 2048])
    assert report["size"] == [16, 4096]
    assert report["space"] == ["RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc"]
    assert report["resolution"] == 600, "the resolution scales with the pixels"
    assert report["levels"] >= 1024, report["levels"]


def received_job(server) -> dict:
    """The newest job as the server stored it: params, region and the input files' bytes.
    (A copy of the GIMP tests' helper.)"""
    import sqlite3

    with sqlite3.connect(server.data_dir / "aiedit.sqlite3") as db:
        row = db.execute("SELECT id, params, region, inputs FROM jobs ORDER BY created_at DESC "
                         "LIMIT 1").fetchone()
    job_id, params, region, inputs = row[0], json.loads(row[1]), json.loads(row[2]), \
        json.loads(row[3])
    files = {name: (server.data_dir / "blobs" / job_id / ref["blob"]).read_bytes()
             for name, ref in inputs.items()}
    return {"params": params, "region": region, "inputs": inputs, "files": files}


@pytest.mark.ml
def test_control_and_reference_layers_reach_the_server(krita_home, tmp_path, tiny_server):
    """generate from real Krita with a canny control layer, a reference layer, a style, a LoRA
    and two variations: the server receives each layer's pixels over the job's region."""
    import hashlib

    report = run_scenario(krita_home, tmp_path, tiny_server.url, "creative",
                          selection=[16, 8, 64, 48])
    job = received_job(tiny_server)
    params = job["params"]
    assert job["region"] == {"x": 16, "y": 8, "width": 64, "height": 48}
    assert [(c["kind"], c["input"], c["strength"]) for c in params["control"]] == [
        ("canny", "control0", 0.7), ("reference", "control1", 0.5)]
    assert params["loras"] == [{"id": "tiny-lora-sdxl", "weight": 0.5}]
    assert params["count"] == 2
    assert params["prompt"].startswith("cinematic film still of a red fox"), params["prompt"]
    assert hashlib.sha256(job["files"]["control0"]).hexdigest() == report["edges"]
    assert hashlib.sha256(job["files"]["control1"]).hexdigest() == report["ref"]
    # the region's corner (16, 8) is the reference layer's pixel (8, 4) from its own origin
    assert report["ref_corner"] == [16, 12, 200, 255]
    assert sorted(n["name"] for n in report["nodes"]) == [
        "generate · a red fox · seed 7", "generate · a red fox · seed 8"]
    assert all(n["bounds"][:2] == [16, 8] for n in report["nodes"])
