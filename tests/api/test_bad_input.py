"""Bad input gets a 4xx that names the problem and leaves no row or file behind."""

import io
import struct
import zlib

import numpy as np
import pytest

from aiedit.app import services_of
from aiedit.config import Config
from tests.helpers import box_mask, noise_image, png_bytes, submit, wait_finished

IMAGE = png_bytes(noise_image(32, 32))
MASK = png_bytes(box_mask(32, 32, (8, 8, 16, 16)))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size, with a tiny (wrong) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def assert_nothing_stored(app):
    services = services_of(app)
    with services.db.session() as s:
        from sqlalchemy import func, select

        from aiedit.store.models import Job

        assert s.scalar(select(func.count()).select_from(Job)) == 0
    assert list(services.config.blob_dir.iterdir()) == []


CASES = [
    (
        "undecodable image",
        "inpaint",
        {"image": b"not an image at all", "mask": MASK},
        {},
        400,
        "image_undecodable",
    ),
    (
        "truncated png",
        "inpaint",
        {"image": IMAGE[: len(IMAGE) // 2], "mask": MASK},
        {},
        400,
        "image_undecodable",
    ),
    (
        "decompression bomb header",
        "upscale",
        {"image": png_header_only(30000, 30000)},
        {},
        413,
        "image_too_large",
    ),
    ("zero size", "upscale", {"image": png_header_only(0, 0)}, {}, 400, "image_undecodable"),
    (
        "mask of another size",
        "inpaint",
        {"image": IMAGE, "mask": png_bytes(box_mask(16, 16, (0, 0, 4, 4)))},
        {},
        422,
        "mask_size_mismatch",
    ),
    ("unknown operation", "sharpen", {"image": IMAGE}, {}, 422, "unknown_operation"),
    (
        "unknown model",
        "upscale",
        {"image": IMAGE},
        {"model": "no-such-model"},
        422,
        "unknown_model",
    ),
    (
        "model for another operation",
        "upscale",
        {"image": IMAGE},
        {"model": "classic-telea"},
        422,
        "model_wrong_operation",
    ),
    (
        "parameter out of range",
        "upscale",
        {"image": IMAGE},
        {"params": {"scale": 99}},
        422,
        "invalid_params",
    ),
    (
        "number sent as a string",
        "upscale",
        {"image": IMAGE},
        {"params": {"scale": "2"}},
        422,
        "invalid_params",
    ),
    (
        "unknown parameter",
        "upscale",
        {"image": IMAGE},
        {"params": {"sclae": 2}},
        422,
        "invalid_params",
    ),
    ("missing image", "inpaint", {"mask": MASK}, {}, 422, "missing_input"),
    ("no mask for a classic inpainter", "inpaint", {"image": IMAGE}, {}, 422, "mask_required"),
    (
        "variations from a classic inpainter",
        "inpaint",
        {"image": IMAGE, "mask": MASK},
        {"params": {"count": 2}},
        422,
        "count_unsupported",
    ),
    (
        "more variations than allowed",
        "inpaint",
        {"image": IMAGE, "mask": MASK},
        {"params": {"count": 9}},
        422,
        "invalid_params",
    ),
    (
        "mask where none is used",
        "upscale",
        {"image": IMAGE, "mask": MASK},
        {},
        422,
        "unexpected_input",
    ),
    ("no model installed", "generate", {}, {"params": {"prompt": "a cat"}}, 422, "no_model"),
    (
        "region of another size",
        "upscale",
        {"image": IMAGE},
        {"region": {"x": 0, "y": 0, "width": 10, "height": 10}},
        422,
        "region_size_mismatch",
    ),
    (
        "raw size mismatch",
        "upscale",
        {"image": b"\x00" * 10},
        {"raw": {"image": {"width": 4, "height": 4}}},
        400,
        "raw_size_mismatch",
    ),
    (
        "output too large",
        "upscale",
        {"image": png_bytes(noise_image(4000, 10))},
        {"params": {"scale": 8}},
        422,
        "output_too_large",
    ),
    ("outpaint with nothing to add", "outpaint", {"image": IMAGE}, {}, 422, "nothing_to_do"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_named_problem(app, client, case):
    _, operation, files, request, status, code = case
    resp = submit(client, operation, files, **request)
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["code"] == code
    assert body["status"] == status
    assert len(body["message"]) > 10
    assert_nothing_stored(app)


def test_request_part_must_be_json(app, client):
    resp = client.post(
        "/v1/jobs",
        data={"request": "{oops", "image": (io.BytesIO(IMAGE), "a.png")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "request_invalid_json"
    assert_nothing_stored(app)


def test_missing_request_part(app, client):
    resp = client.post(
        "/v1/jobs", data={"image": (io.BytesIO(IMAGE), "a.png")}, content_type="multipart/form-data"
    )
    assert resp.status_code == 422
    assert "request" in resp.get_json()["message"]


def test_upload_over_the_limit_is_413(tmp_path):
    from aiedit.app import create_app

    app = create_app(Config(data_dir=tmp_path / "d", testing=True, max_upload_bytes=50_000))
    try:
        big = png_bytes(noise_image(200, 200))
        resp = submit(app.test_client(), "upscale", {"image": big})
        assert resp.status_code == 413
        assert resp.get_json()["code"] == "too_large"
        assert_nothing_stored(app)
    finally:
        services_of(app).stop()


def test_unusual_but_valid_images_are_converted(client):
    from PIL import Image

    cases = {
        "1x1": Image.new("RGB", (1, 1), (10, 20, 30)),
        "16-bit gray": Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000),
        "cmyk": Image.new("CMYK", (8, 8), (0, 255, 0, 0)),
        "palette": Image.new("P", (8, 8), 3),
        "gray": Image.new("L", (8, 8), 77),
    }
    for name, img in cases.items():
        buf = io.BytesIO()
        img.save(buf, "TIFF" if img.mode == "CMYK" else "PNG")
        resp = submit(
            client,
            "upscale",
            {"image": buf.getvalue()},
            model="classic-lanczos",
            params={"scale": 1},
        )
        assert resp.status_code == 202, (name, resp.get_json())
        job = wait_finished(client, resp.get_json()["id"])
        # upscale keeps 16 bits: the 8-bit download is the rounded one
        raw = client.get(job["results"][0]["url"] + "?format=rgba").data
        pixels = np.frombuffer(raw, np.uint8).reshape(img.height, img.width, 4)
        assert pixels.shape[:2] == (img.height, img.width), name
        if name == "16-bit gray":
            assert job["results"][0]["depth"] == 16
            assert pixels[7, 7, 0] == round(63000 / 257), "16-bit values are scaled, not clipped"
        if name == "cmyk":
            assert pixels[0, 0, 1] < 60 and pixels[0, 0, 0] > 200, "CMYK magenta stays magenta"


def test_exif_rotation_is_applied(client):
    from PIL import Image

    img = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    resp = submit(
        client, "upscale", {"image": buf.getvalue()}, params={"scale": 1}, model="classic-lanczos"
    )
    job_id = resp.get_json()["id"]
    job = wait_finished(client, job_id)
    assert (job["results"][0]["width"], job["results"][0]["height"]) == (20, 40)
