"""Deep colour through the jobs API: 16-bit uploads (raw rgba16 and 16-bit PNG) keep their
depth through the operations that declare rgba16, and come back 16-bit."""

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.helpers import box_mask, png_bytes, submit, wait_finished


def gradient16(width: int, height: int) -> np.ndarray:
    """Every row a different 16-bit level (so 8 bits would merge them), alpha varying too."""
    levels = np.linspace(0, 65535, height).round().astype(np.uint16)
    rgba = np.empty((height, width, 4), np.uint16)
    rgba[..., 0] = levels[:, None]
    rgba[..., 1] = levels[::-1, None]
    rgba[..., 2] = np.linspace(1000, 64000, width).round().astype(np.uint16)[None, :]
    rgba[..., 3] = 65535 - levels[:, None] // 4
    return rgba


def png16(rgba: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgba[..., [2, 1, 0, 3]]))
    assert ok
    return buf.tobytes()


def read_png16(data: bytes) -> np.ndarray:
    bgra = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert bgra.dtype == np.uint16, "the result PNG is not 16-bit"
    return bgra[..., [2, 1, 0, 3]]


def raw16(rgba: np.ndarray) -> bytes:
    return np.ascontiguousarray(rgba, dtype="<u2").tobytes()


def submit_raw16(client, operation, image, extra_files=None, raw=None, **request):
    height, width = image.shape[:2]
    files = {"image": raw16(image), **(extra_files or {})}
    declared = {"image": {"width": width, "height": height, "format": "rgba16"}, **(raw or {})}
    return submit(client, operation, files, raw=declared, **request)


def finished(client, resp) -> dict:
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"])
    assert job["state"] == "succeeded", job
    return job


def test_operations_declare_their_input_formats(client):
    ops = {op["id"]: op for op in client.get("/v1/operations").get_json()["operations"]}
    for deep in ("upscale", "inpaint", "outpaint", "restore"):
        assert ops[deep]["input_formats"] == ["rgba8", "rgba16"], deep
    for shallow in ("generate", "edit", "preprocess", "video"):
        assert ops[shallow]["input_formats"] == ["rgba8"], shallow


@pytest.mark.parametrize("encoding", ["raw", "png"])
def test_identity_upscale_returns_16_bit_input_bit_exact(client, encoding):
    image = gradient16(97, 300)
    if encoding == "raw":
        resp = submit_raw16(client, "upscale", image, model="classic-lanczos",
                            params={"scale": 1}, region={"x": 7, "y": 9, "width": 97,
                                                         "height": 300})
    else:
        resp = submit(client, "upscale", {"image": png16(image)}, model="classic-lanczos",
                      params={"scale": 1}, region={"x": 7, "y": 9, "width": 97, "height": 300})
    job = finished(client, resp)
    result = job["results"][0]
    assert result["depth"] == 16 and result["offset"] == {"x": 7, "y": 9}
    raw = client.get(result["url"] + "?format=rgba16")
    assert raw.headers["X-Image-Depth"] == "16"
    back = np.frombuffer(raw.data, "<u2").reshape(300, 97, 4)
    assert np.array_equal(back, image)
    png = client.get(result["url"])
    assert png.mimetype == "image/png" and png.headers["X-Image-Depth"] == "16"
    assert np.array_equal(read_png16(png.data), image)


@pytest.mark.parametrize("colour_type", [0, 2, 4])  # gray, RGB, gray+alpha
def test_16_bit_png_of_every_colour_type_is_read_at_16_bits(client, colour_type):
    import struct
    import zlib

    channels = {0: 1, 2: 3, 4: 2}[colour_type]
    rng = np.random.default_rng(colour_type)
    samples = rng.integers(0, 65536, (6, 7, channels), dtype=np.uint16)
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(6))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 6, 16, colour_type,
                                                              0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    job = finished(client, submit(client, "upscale", {"image": png}, model="classic-lanczos",
                                  params={"scale": 1}))
    out = np.frombuffer(client.get(job["results"][0]["url"] + "?format=rgba16").data, "<u2")
    out = out.reshape(6, 7, 4)
    gray = channels in (1, 2)
    expected_rgb = np.repeat(samples[..., :1], 3, axis=2) if gray else samples
    assert np.array_equal(out[..., :3], expected_rgb)
    assert np.array_equal(out[..., 3], samples[..., 1] if channels == 2 else
                          np.full((6, 7), 65535, np.uint16))


def test_a_16_bit_png_for_an_8_bit_operation_is_rounded_not_truncated():
    from aiedit.imaging.codec import decode_image

    image = gradient16(9, 300)
    eight = decode_image("image", png16(image), 10**6, 1000)
    assert eight.dtype == np.uint8
    assert np.array_equal(eight, ((image.astype(np.uint32) + 128) // 257).astype(np.uint8))
    assert np.array_equal(decode_image("image", png16(image), 10**6, 1000, deep=True), image)


def test_upscale_keeps_more_levels_than_8_bits_hold(client):
    image = gradient16(16, 1024)
    job = finished(client, submit_raw16(client, "upscale", image, model="classic-lanczos",
                                        params={"scale": 2}))
    result = job["results"][0]
    assert (result["width"], result["height"], result["depth"]) == (32, 2048, 16)
    out = np.frombuffer(client.get(result["url"] + "?format=rgba16").data, "<u2")
    out = out.reshape(2048, 32, 4)
    levels = len(np.unique(out[:, 16, 0]))
    assert levels >= 1024, f"only {levels} levels down the gradient"
    # the 8-bit download of the same result is the rounded 16-bit one
    eight = np.frombuffer(client.get(result["url"] + "?format=rgba").data, np.uint8)
    assert np.array_equal(eight.reshape(2048, 32, 4), ((out.astype(np.uint32) + 128) // 257))


def test_16_bit_lanczos_agrees_with_the_8_bit_one(client):
    """The same picture sent at 8 and at 16 bits (x257) and enlarged x2: the 16-bit result,
    rounded to 8 bits, is the 8-bit result within one code value where it is opaque; with
    alpha both resample colour premultiplied, and the 8-bit path's premultiplied rounding
    allows a little more."""
    from tests.helpers import noise_image

    # smooth (blurred noise): on raw noise Lanczos rings past 0..255, which the 8-bit path
    # clips between its two passes and the float path does not
    image = cv2.GaussianBlur(noise_image(40, 30, seed=9), (0, 0), 2.0)

    def both(picture):
        deep = finished(client, submit_raw16(client, "upscale", picture.astype(np.uint16) * 257,
                                             model="classic-lanczos", params={"scale": 2}))
        flat = finished(client, submit(client, "upscale", {"image": png_bytes(picture)},
                                       model="classic-lanczos", params={"scale": 2}))
        return [np.frombuffer(client.get(job["results"][0]["url"] + "?format=rgba").data,
                              np.uint8).reshape(60, 80, 4).astype(int) for job in (deep, flat)]

    out16, out8 = both(image)
    assert np.abs(out16 - out8).max() <= 1
    image[..., 3] = np.linspace(0, 255, 40).round().astype(np.uint8)[None, :]
    out16, out8 = both(image)
    assert np.abs(out16[..., 3] - out8[..., 3]).max() <= 1
    solid = out8[..., 3] >= 128
    error = np.abs(out16 - out8)[solid]
    assert error.max() <= 3 and error.mean() < 1
    clear = out8[..., 3] == 0  # premultiplied: no colour where there is no alpha, in both
    assert clear.any() and (out16[clear][:, :3] == 0).all() and (out8[clear][:, :3] == 0).all()


def test_jpeg_and_webp_of_a_16_bit_result_are_its_8_bit_rounding(client):
    image = gradient16(20, 16)
    image[..., 3] = 65535
    job = finished(client, submit_raw16(client, "upscale", image, model="classic-lanczos",
                                        params={"scale": 1}))
    url = job["results"][0]["url"]
    webp = client.get(url + "?format=webp")
    assert webp.mimetype == "image/webp" and webp.headers["X-Image-Depth"] == "8"
    decoded = np.asarray(Image.open(io.BytesIO(webp.data)).convert("RGBA"))
    assert np.array_equal(decoded, ((image.astype(np.uint32) + 128) // 257).astype(np.uint8))
    jpeg = client.get(url + "?format=jpeg")
    assert jpeg.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.data)).size == (20, 16)


def test_8_bit_input_to_a_deep_operation_stays_8_bit(client):
    image = np.dstack([np.full((20, 30, 3), 77, np.uint8), np.full((20, 30), 255, np.uint8)])
    job = finished(client, submit(client, "upscale", {"image": png_bytes(image)},
                                  model="classic-lanczos", params={"scale": 1}))
    result = job["results"][0]
    assert result["depth"] == 8
    wide = client.get(result["url"] + "?format=rgba16")
    assert wide.headers["X-Image-Depth"] == "16"
    assert np.array_equal(np.frombuffer(wide.data, "<u2").reshape(20, 30, 4),
                          image.astype(np.uint16) * 257)


def test_inpaint_keeps_16_bit_pixels_outside_the_mask(client):
    image = gradient16(64, 48)
    mask = box_mask(64, 48, (20, 10, 40, 30))
    job = finished(client, submit_raw16(client, "inpaint", image,
                                        extra_files={"mask": png_bytes(mask)},
                                        params={"feather": 4}, model="classic-telea"))
    result = job["results"][0]
    assert result["depth"] == 16
    out = read_png16(client.get(result["url"]).data)
    assert np.array_equal(out[mask == 0], image[mask == 0])
    inside = out[mask > 0]
    assert not np.array_equal(inside, image[mask > 0])
    assert (inside % 257 != 0).any(), "the fill was computed at 8 bits"


def test_outpaint_keeps_the_16_bit_original_and_fills_at_16_bits(client):
    image = gradient16(40, 30)
    job = finished(client, submit(client, "outpaint", {"image": png16(image)},
                                  model="classic-telea", params={"left": 8, "bottom": 5}))
    result = job["results"][0]
    assert (result["width"], result["height"], result["depth"]) == (48, 35, 16)
    out = read_png16(client.get(result["url"]).data)
    assert np.array_equal(out[:30, 8:], image)
    assert (out[:30, :8, :3] % 257 != 0).any()


def test_classic_denoise_on_16_bits_replaces_only_the_pixels_it_changed(client):
    """The classic denoiser works at 8 bits: where its 8-bit result equals the 8-bit input the
    16-bit input is kept; elsewhere its result, widened."""
    from aiedit.imaging.codec import to_8bit

    image = np.empty((40, 48, 4), np.uint16)
    # a flat dark grey (8-bit 60) the denoiser leaves alone away from the noise (it rounds
    # most flat colours through Lab by one code), with low bits 8 bits do not hold
    image[...] = (60 * 257 + 100, 60 * 257 - 90, 60 * 257 + 7, 65535)
    rng = np.random.default_rng(4)
    image[12:28, 12:36, :3] = rng.integers(0, 65536, (16, 24, 3), dtype=np.uint16)
    job = finished(client, submit_raw16(client, "restore", image, model="classic-denoise",
                                        params={"strength": 1.0}))
    result = job["results"][0]
    assert result["depth"] == 16
    out = read_png16(client.get(result["url"]).data)
    same = (to_8bit(out[..., :3]) == to_8bit(image[..., :3])).all(axis=2)
    kept = (out[..., :3] == image[..., :3]).all(axis=2)
    assert (~same).any() and kept.any()
    assert (kept | ~same).all() and np.array_equal(kept, same)
    assert (out[~kept][:, :3] % 257 == 0).all()
    assert np.array_equal(out[..., 3], image[..., 3])


# --- bad 16-bit input: clear 4xx naming the problem --------------------------------------------


def test_rgba16_to_an_8_bit_operation_is_refused_naming_the_formats(client):
    image = gradient16(16, 16)
    resp = submit_raw16(client, "preprocess", image, model="classic-canny",
                        params={"kind": "canny"})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["code"] == "format_not_accepted"
    assert "preprocess takes rgba8" in body["message"] and "input_formats" in body["message"]


def test_rgba16_of_the_wrong_length_names_both_sizes(client):
    image = gradient16(16, 16)
    resp = submit(client, "upscale", {"image": raw16(image)[:-2]},
                  raw={"image": {"width": 16, "height": 16, "format": "rgba16"}})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "raw_size_mismatch"
    assert "2046 bytes" in body["message"] and "8 bytes per pixel needs 2048" in body["message"]


def test_8_bit_data_declared_as_rgba16_is_recognised(client):
    resp = submit(client, "upscale", {"image": bytes(16 * 16 * 4)},
                  raw={"image": {"width": 16, "height": 16, "format": "rgba16"}})
    assert resp.status_code == 400
    assert "8-bit data sent as rgba16" in resp.get_json()["message"]


def test_unknown_raw_format_is_refused(client):
    resp = submit(client, "upscale", {"image": bytes(16 * 16 * 4)},
                  raw={"image": {"width": 16, "height": 16, "format": "rgba32f"}})
    assert resp.status_code == 422
    assert "format" in json.dumps(resp.get_json()["errors"])


@pytest.mark.parametrize("part", ["mask", "reference"])
def test_rgba16_is_only_for_the_image_part(client, part):
    image = gradient16(16, 16)
    other = raw16(image) if part == "reference" else bytes(16 * 16 * 2)
    resp = submit_raw16(client, "inpaint", image, extra_files={part: other},
                        raw={part: {"width": 16, "height": 16, "format": "rgba16"}})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["code"] == "format_not_accepted" and body["message"].startswith(f"{part}:")


def test_truncated_16_bit_png_is_a_clear_400(client):
    data = png16(gradient16(64, 64))
    resp = submit(client, "upscale", {"image": data[: len(data) // 2]})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "image_undecodable" and "16-bit PNG" in body["message"]


def test_16_bit_png_in_another_profile_is_refused(client):
    image = gradient16(8, 8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    with_profile = _add_iccp(png16(image), srgb.tobytes())
    resp = submit(client, "upscale", {"image": with_profile})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["code"] == "profile_not_srgb" and "convert the pixels to sRGB" in body["message"]
    # the same pixels with an sRGB profile are taken
    ok = _add_iccp(png16(image), ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    job = finished(client, submit(client, "upscale", {"image": ok}, params={"scale": 1},
                                  model="classic-lanczos"))
    assert job["results"][0]["depth"] == 16


def test_16_bit_png_too_large_is_413_before_decoding(make_app):
    app = make_app(max_pixels=100 * 100)
    client = app.test_client()
    resp = submit(client, "upscale", {"image": png16(gradient16(101, 100))})
    assert resp.status_code == 413
    assert resp.get_json()["code"] == "image_too_large"


def _add_iccp(png: bytes, profile: bytes) -> bytes:
    """The PNG with an iCCP chunk right after IHDR."""
    import struct
    import zlib

    body = b"icc\x00\x00" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(
        ">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]


def test_pillow_reads_the_iccp_chunk_we_add():
    data = _add_iccp(png16(gradient16(4, 4)), b"x" * 10)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile") == b"x" * 10
