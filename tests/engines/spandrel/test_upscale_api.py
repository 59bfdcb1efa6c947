"""Upscale jobs with spandrel models, through the HTTP API and the catalog -> engine path."""

from __future__ import annotations

import numpy as np
import spandrel
import torch

from aiedit.app import services_of
from aiedit.engines.spandrel import SpandrelNet
from aiedit.ops.base import Canceled, OpContext, Progress, Region
from aiedit.ops.upscale import run as upscale_run
from tests.engines.spandrel.conftest import face_photo, psnr
from tests.engines.spandrel.test_ncnn_convert import package_runner
from tests.helpers import decode_png, png_bytes, submit, wait_finished


def rgba_with_soft_alpha(size: int) -> np.ndarray:
    image = face_photo(size).copy()
    image[..., 3] = np.linspace(0, 255, size, dtype=np.uint8)[None, :]
    return image


def upscale_job(client, image, model, **params):
    height, width = image.shape[:2]
    resp = submit(client, "upscale", {"image": png_bytes(image)}, model=model,
                  region={"x": 10, "y": 4, "width": width, "height": height}, params=params)
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"], timeout=120)
    assert job["state"] == "succeeded", job
    return job, decode_png(client.get(job["results"][0]["url"]).data)


def test_compact_model_upscales_in_tiles_like_one_whole_call(client, tiny_compact):
    image = rgba_with_soft_alpha(64)
    job, out = upscale_job(client, image, "tiny-compact-x4", scale=4, tile_size=40,
                           tile_overlap=16)
    result = job["results"][0]
    assert (result["width"], result["height"]) == (256, 256)
    assert result["offset"] == {"x": 40, "y": 16}
    assert job["progress"]["stage"] == "done" and job["progress"]["total"] >= 4
    descriptor = spandrel.ModelLoader().load_from_file(tiny_compact).eval()
    padded = np.pad(image[..., :3].astype(np.float32) / 255, ((10, 10), (10, 10), (0, 0)),
                    mode="reflect")
    whole = SpandrelNet(descriptor, "cpu", torch.float32)(padded)[40:-40, 40:-40]
    expected = np.clip(whole * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(out[..., :3].astype(int) - expected.astype(int)).max() <= 1
    assert abs(int(out[0, -1, 3]) - 255) <= 2 and out[0, 0, 3] <= 2  # alpha enlarged too


def test_esrgan_model_resamples_to_a_scale_it_does_not_have(client, tiny_esrgan):
    image = face_photo(40)
    job, out = upscale_job(client, image, "tiny-esrgan-x2", scale=3)
    assert out.shape == (120, 120, 4)
    assert job["model"] == "tiny-esrgan-x2"


def test_a_second_job_reuses_the_loaded_model(app, client, tiny_compact):
    image = face_photo(24)
    upscale_job(client, image, "tiny-compact-x4", scale=4)
    upscale_job(client, image, "tiny-compact-x4", scale=2)
    assert services_of(app).cache.loads == 1


def test_bundled_ncnn_model_is_the_cpu_default_and_matches_the_package(client):
    ops = {op["id"]: op for op in client.get("/v1/operations").get_json()["operations"]}
    assert ops["upscale"]["default_model"] == "realesr-animevideov3-x4-ncnn"
    image = face_photo(128)[48:80, 48:80].copy()
    job, out = upscale_job(client, image, "realesr-animevideov3-x2-ncnn", scale=2)
    assert out.shape == (64, 64, 4)
    theirs = package_runner(0, np.ascontiguousarray(image[..., :3]))
    assert psnr(out[..., :3], theirs) >= 30.0


def test_overlap_of_half_a_tile_is_refused_before_queueing(client):
    resp = submit(client, "upscale", {"image": png_bytes(face_photo(32))},
                  model="tiny-compact-x4", params={"tile_size": 64, "tile_overlap": 32})
    assert resp.status_code in (400, 422), resp.get_json()
    assert "tile_overlap" in resp.get_json()["message"]


def test_cancel_stops_at_the_next_tile(tiny_compact):
    """The op checks for cancellation before each tile: canceled after tile 2, no tile 3."""
    from aiedit.engines import load
    from aiedit.engines.catalog import ModelEntry

    entry = ModelEntry(id="t", name="t", operations=("upscale",), engine="spandrel",
                       source={"path": str(tiny_compact)})
    model = load(entry, "auto")
    calls = []
    real_net = model.obj
    model.obj = CountingNet(real_net, calls)
    reports = []
    progress = Progress(lambda step, total, stage: reports.append(step),
                        canceled=lambda: len(calls) >= 2)
    ctx = OpContext(params={"scale": 4.0, "tile_size": 32, "tile_overlap": 8},
                    inputs={"image": face_photo(96)}, region=Region(0, 0, 96, 96), model=model,
                    progress=progress)
    try:
        upscale_run(ctx)
    except Canceled:
        pass
    else:
        raise AssertionError("the job was not canceled")
    assert len(calls) == 2 and reports == [0, 1]


class CountingNet:
    def __init__(self, net, calls):
        self.net, self.calls = net, calls
        self.scale, self.purpose, self.edge_pad = net.scale, net.purpose, net.edge_pad

    def __call__(self, x):
        self.calls.append(x.shape)
        return self.net(x)


def test_the_output_check_counts_the_nets_native_scale(tmp_path, tiny_compact, tiny_esrgan):
    """A x4 net asked for x2 first makes a x4 image: that must fit the output limit too."""
    from aiedit.app import create_app
    from aiedit.config import Config

    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        f'[[model]]\nid = "x4-unknown"\noperations = ["upscale"]\nengine = "spandrel"\n'
        f'source = {{ path = "{tiny_compact}" }}\n\n'
        f'[[model]]\nid = "x2-declared"\noperations = ["upscale"]\nengine = "spandrel"\n'
        f'source = {{ path = "{tiny_esrgan}" }}\noptions = {{ native_scale = 2 }}\n'
    )
    app = create_app(Config(data_dir=tmp_path / "data", testing=True, catalog_file=str(catalog),
                            max_output_pixels=250 * 250))
    try:
        client = app.test_client()
        image = {"image": png_bytes(face_photo(100))}
        resp = submit(client, "upscale", image, model="x4-unknown", params={"scale": 2})
        assert resp.status_code == 422, resp.get_json()
        body = resp.get_json()
        assert body["code"] == "output_too_large"
        assert "x4" in body["message"] and "400x400" in body["message"]
        for model in ("x2-declared", "classic-lanczos"):
            resp = submit(client, "upscale", image, model=model, params={"scale": 2})
            assert resp.status_code == 202, (model, resp.get_json())
            job = wait_finished(client, resp.get_json()["id"], timeout=120)
            assert job["state"] == "succeeded", job
    finally:
        services_of(app).stop()


def test_the_catalogs_native_scales_are_the_nets_own(models_dir):
    from aiedit.engines.catalog import Catalog
    from aiedit.engines.spandrel import load

    catalog = Catalog.load()
    for model_id in ("realesr-animevideov3-x4-ncnn", "realesr-animevideov3-x2-ncnn",
                     "realesr-animevideov3-x3-ncnn"):
        entry = catalog.get(model_id)
        assert load(entry, "cpu").info["scale"] == entry.options["native_scale"], model_id


def test_a_16_bit_layer_is_upscaled_by_a_net_at_16_bits(client, tiny_compact):
    """Nets compute in float: a 16-bit upload comes back 16-bit, equal (within rounding) to
    the net run on the float pixels in one call, with values 8 bits cannot hold."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 65536, (48, 48, 4), dtype=np.uint16)
    image[..., 3] = 65535
    resp = submit(client, "upscale", {"image": image.astype("<u2").tobytes()},
                  model="tiny-compact-x4", params={"scale": 4, "tile_size": 32,
                                                   "tile_overlap": 8},
                  raw={"image": {"width": 48, "height": 48, "format": "rgba16"}})
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"], timeout=120)
    assert job["state"] == "succeeded", job
    result = job["results"][0]
    assert (result["width"], result["height"], result["depth"]) == (192, 192, 16)
    body = client.get(result["url"] + "?format=rgba16").data
    out = np.frombuffer(body, "<u2").reshape(192, 192, 4)
    descriptor = spandrel.ModelLoader().load_from_file(tiny_compact).eval()
    padded = np.pad(image[..., :3].astype(np.float32) / 65535, ((10, 10), (10, 10), (0, 0)),
                    mode="reflect")
    whole = SpandrelNet(descriptor, "cpu", torch.float32)(padded)[40:-40, 40:-40]
    expected = np.clip(whole * 65535 + 0.5, 0, 65535)
    # tiles are blended across their overlap: there within one 8-bit code (as the 8-bit test
    # above), elsewhere within rounding
    error = np.abs(out[..., :3].astype(np.float64) - expected)
    assert np.median(error) <= 1 and error.max() <= 257
    assert (out[..., :3] % 257 != 0).mean() > 0.9, "the result was computed at 8 bits"
    assert (out[..., 3] == 65535).all()
