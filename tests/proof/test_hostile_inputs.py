"""Hostile input over real HTTP: every file of the corpus (as image and as mask), broken and huge
JSON, absurd parameters and path tricks get a 4xx that names the problem; the server stays
healthy and keeps nothing. Unusual but valid images are accepted and converted exactly."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
import requests
from PIL import Image, ImageCms

from tests.helpers import box_mask, noise_image, png_bytes
from tests.proof.conftest import assert_error, leftovers, post_job, wait_job
from tests.proof.make_corpus import CORPUS, CORPUS_DIR

pytestmark = pytest.mark.e2e

IMAGE = png_bytes(noise_image(32, 24))
MASK = png_bytes(box_mask(32, 24, (8, 8, 20, 16)))
UPSCALE = {"operation": "upscale", "model": "classic-lanczos", "params": {"scale": 1}}
INPAINT = {"operation": "inpaint", "model": "classic-telea"}

TOO_LARGE = ("bomb-1", "header-")  # bomb-text.png: Pillow refuses its text chunk, 400


def expected(name: str) -> tuple[int, str]:
    if name.startswith(TOO_LARGE):
        return 413, "image_too_large"
    return 400, "image_undecodable"


def test_the_committed_corpus_is_what_make_corpus_builds():
    """Byte-for-byte equality would tie the corpus to one encoder version: the names must match
    and every file must be non-trivial where its builder says so."""
    on_disk = {p.name for p in CORPUS_DIR.iterdir()}
    assert on_disk == set(CORPUS), "run `python -m tests.proof.make_corpus` and commit the files"
    for name, build in CORPUS.items():
        assert len((CORPUS_DIR / name).read_bytes()) == len(build()) or name.endswith(
            (".jpg", ".webp", ".gif")
        ), f"{name} differs from what make_corpus builds"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_is_refused_as_image_and_as_mask(proof_server, name):
    data = (CORPUS_DIR / name).read_bytes()
    status, code = expected(name)
    body = assert_error(post_job(proof_server.url, UPSCALE, {"image": data}), status, code)
    assert body["message"].startswith("image:"), "the message names the field"
    body = assert_error(
        post_job(proof_server.url, INPAINT, {"image": IMAGE, "mask": data}), status, code
    )
    assert body["message"].startswith("mask:")
    assert requests.get(proof_server.url + "/v1/health", timeout=5).json()["status"] == "ok"


def deep_json(depth: int) -> str:
    return '{"operation": "upscale", "params": ' + "[" * depth + "]" * depth + "}"


BAD_REQUESTS = [
    ("not json", "{oops", 400, "request_invalid_json"),
    ("json array", "[1, 2]", 422, "invalid_request"),
    ("json string", '"upscale"', 422, "invalid_request"),
    ("nested 100000 deep", deep_json(100_000), 400, "request_invalid_json"),
    (
        "8 MB of params",
        json.dumps({**UPSCALE, "params": {f"k{i}": "x" * 64 for i in range(120_000)}}),
        422,
        "invalid_params",
    ),
    ("NaN literal", '{"operation": "upscale", "params": {"scale": NaN}}', 422, "invalid_params"),
    (
        "Infinity literal",
        '{"operation": "upscale", "params": {"scale": Infinity}}',
        422,
        "invalid_params",
    ),
    ("negative scale", json.dumps({**UPSCALE, "params": {"scale": -2}}), 422, "invalid_params"),
    ("zero scale", json.dumps({**UPSCALE, "params": {"scale": 0}}), 422, "invalid_params"),
    (
        "huge integer",
        json.dumps({**UPSCALE, "params": {"tile_size": 10**400}}),
        422,
        "invalid_params",
    ),
    (
        "negative tile",
        json.dumps({**UPSCALE, "params": {"tile_size": -512}}),
        422,
        "invalid_params",
    ),
    (
        "region NaN",
        '{"operation": "upscale", "region": {"x": NaN, "y": 0, "width": 32, "height": 24}}',
        422,
        "invalid_request",
    ),
    (
        "region negative size",
        json.dumps({**UPSCALE, "region": {"x": 0, "y": 0, "width": -32, "height": 24}}),
        422,
        "invalid_request",
    ),
    (
        "raw negative size",
        json.dumps({**UPSCALE, "raw": {"image": {"width": -1, "height": 4}}}),
        422,
        "invalid_request",
    ),
    (
        "100 KB prompt",
        json.dumps({**INPAINT, "params": {"prompt": "a red door " * 9310}}),
        422,
        "invalid_params",
    ),
    (
        "traversal model id",
        json.dumps({"operation": "upscale", "model": "../../../etc/passwd"}),
        422,
        "unknown_model",
    ),
    (
        "traversal operation",
        json.dumps({"operation": "../../ops/upscale"}),
        422,
        "unknown_operation",
    ),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_part_is_refused(proof_server, case):
    _, text, status, code = case
    files = {"image": IMAGE}
    if '"inpaint"' in text:
        files["mask"] = MASK
    assert_error(post_job(proof_server.url, text, files), status, code)


def test_request_outside_multipart_is_refused(proof_server):
    url = proof_server.url + "/v1/jobs"
    assert_error(requests.post(url, json=UPSCALE, timeout=10), 422)
    assert_error(
        requests.post(
            url, data=b"\x00" * 1000, timeout=10, headers={"Content-Type": "multipart/form-data"}
        ),
        422,
    )
    body = b'--b\r\nContent-Disposition: form-data; name="request"\r\n\r\n{"operat'
    resp = requests.post(
        url, data=body, timeout=10, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert 400 <= resp.status_code < 500, resp.text


def test_path_tricks_touch_nothing_outside_the_data_dir(proof_server, tmp_path):
    url = proof_server.url
    names = [
        "../../../../tmp/aiedit-escape.png",
        "..\\..\\escape.png",
        "/etc/passwd",
        "nul\x00.png",
        "ÿ" * 300 + ".png",
    ]
    for filename in names:
        resp = post_job(url, UPSCALE, {"image": (filename, IMAGE)})
        assert resp.status_code == 202, (filename, resp.text)
        assert wait_job(url, resp.json()["id"])["state"] == "succeeded"
    stored = {p.name for p in proof_server.data_dir.rglob("*")}
    assert not any("escape" in n or "passwd" in n for n in stored), stored
    for job_id in ("..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "a" * 5000, "x/../../y"):
        resp = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10)
        assert resp.status_code == 404, (job_id, resp.status_code)
    resp = requests.get(f"{url}/v1/jobs/abc/results/-1", timeout=10)
    assert resp.status_code == 404
    for key in ("../../x", "a" * 201):
        resp = post_job(url, UPSCALE, {"image": IMAGE}, headers={"Idempotency-Key": key})
        assert resp.status_code in (202, 422), resp.text
        if resp.status_code == 202:
            wait_job(url, resp.json()["id"])


@pytest.mark.parametrize(
    "query",
    ["wait=-1", "wait=NaN", "wait=inf", "wait=1e309", "wait=abc", "format=../../etc/passwd"],
)
def test_bad_query_values_are_refused(proof_server, query):
    job = post_job(proof_server.url, UPSCALE, {"image": IMAGE}).json()
    wait_job(proof_server.url, job["id"])
    path = f"/v1/jobs/{job['id']}" + ("/results/0" if query.startswith("format") else "")
    assert_error(requests.get(f"{proof_server.url}{path}?{query}", timeout=10), 422)


@pytest.mark.parametrize(
    "query", ["page=-1", "page=0", "page_size=0", "page_size=100000", "page=abc"]
)
def test_bad_pagination_is_refused(proof_server, query):
    assert_error(requests.get(f"{proof_server.url}/v1/jobs?{query}", timeout=10), 422)


def test_mask_of_another_size_is_refused(proof_server):
    for size in ((31, 24), (32, 25), (1, 1), (24, 32)):
        mask = png_bytes(box_mask(*size, (0, 0, 1, 1)))
        body = assert_error(
            post_job(proof_server.url, INPAINT, {"image": IMAGE, "mask": mask}),
            422,
            "mask_size_mismatch",
        )
        assert f"{size[0]}x{size[1]}" in body["message"] and "32x24" in body["message"]


def test_nothing_was_left_behind(proof_server):
    """Runs last in this module: only the accepted jobs exist, and nothing else is on disk."""
    jobs = requests.get(proof_server.url + "/v1/jobs?page_size=100", timeout=10).json()
    for job in jobs:
        assert job["state"] == "succeeded", job
        assert requests.delete(f"{proof_server.url}/v1/jobs/{job['id']}", timeout=10).ok
    assert leftovers(proof_server.data_dir) == []
    assert requests.get(proof_server.url + "/v1/health", timeout=5).json()["status"] == "ok"
    assert "Traceback" not in proof_server.log()


# --- unusual but valid ------------------------------------------------------------------------


def encoded(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def png16_rgb(values: tuple[int, int, int], size=(3, 2)) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (every pixel the same)."""
    width, height = size
    row = b"\x00" + struct.pack(">HHH", *values) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def pattern(width: int = 3, height: int = 2) -> np.ndarray:
    """A small RGBA image whose every pixel differs, so any flip or turn shows."""
    idx = np.arange(width * height, dtype=np.uint8).reshape(height, width)
    return np.dstack([idx * 20, 255 - idx * 20, idx * 7, np.full_like(idx, 255)])


def with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(Image.fromarray(pixels, "RGBA"), "PNG", exif=exif.tobytes())


# What a viewer shows for each EXIF orientation of stored pixels `a` (numpy, not Pillow).
ORIENTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def fetch_rgba(url: str, job: dict) -> np.ndarray:
    result = job["results"][0]
    raw = requests.get(url + result["url"], params={"format": "rgba"}, timeout=30).content
    return np.frombuffer(raw, np.uint8).reshape(result["height"], result["width"], 4)


def run_upscale(url: str, data: bytes) -> np.ndarray:
    resp = post_job(url, UPSCALE, {"image": data})
    assert resp.status_code == 202, resp.text
    job = wait_job(url, resp.json()["id"])
    assert job["state"] == "succeeded", job
    return fetch_rgba(url, job)


@pytest.mark.parametrize("orientation", sorted(ORIENTED))
def test_exif_orientation_is_applied(proof_server, orientation):
    stored = pattern()
    out = run_upscale(proof_server.url, with_orientation(stored, orientation))
    assert np.array_equal(out, ORIENTED[orientation](stored))


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def palette_with_transparency() -> bytes:
    img = Image.new("P", (4, 2), 1)
    img.putpalette([0, 0, 0, 200, 30, 40] + [0] * 762)
    img.putpixel((0, 0), 0)
    return encoded(img, "PNG", transparency=0)


# name -> (file, pixel (y, x) to look at, expected RGBA, tolerance)
VALID = {
    "1x1": (encoded(Image.new("RGB", (1, 1), (10, 20, 30))), (0, 0), (10, 20, 30, 255), 0),
    "16-bit RGB": (png16_rgb((1000, 30000, 65535)), (1, 2), (4, 117, 255, 255), 1),
    "grayscale": (encoded(Image.new("L", (5, 3), 77)), (2, 4), (77, 77, 77, 255), 0),
    "gray + alpha": (encoded(Image.new("LA", (5, 3), (100, 50))), (1, 1), (100, 100, 100, 50), 0),
    "1-bit": (encoded(Image.new("1", (9, 3), 1)), (2, 8), (255, 255, 255, 255), 0),
    "palette": (encoded(Image.new("P", (4, 4), 3)), (0, 0), None, 0),
    "palette transparent": (palette_with_transparency(), (0, 0), (0, 0, 0, 0), 0),
    "palette opaque part": (palette_with_transparency(), (1, 3), (200, 30, 40, 255), 0),
    "CMYK JPEG": (
        encoded(Image.new("CMYK", (16, 16), (0, 255, 0, 0)), "JPEG", quality=95),
        (8, 8),
        (255, 0, 255, 255),
        3,
    ),
    "CMYK TIFF": (
        encoded(Image.new("CMYK", (4, 4), (0, 0, 255, 0)), "TIFF"),
        (1, 1),
        (255, 255, 0, 255),
        0,
    ),
    "progressive JPEG": (
        encoded(Image.new("RGB", (40, 24), (0, 128, 255)), "JPEG", quality=95, progressive=True),
        (12, 20),
        (0, 128, 255, 255),
        3,
    ),
    "WebP with alpha": (
        encoded(Image.new("RGBA", (6, 6), (1, 2, 3, 4)), "WEBP", lossless=True),
        (3, 3),
        (1, 2, 3, 4),
        0,
    ),
    "BMP": (encoded(Image.new("RGB", (7, 5), (9, 8, 7)), "BMP"), (4, 6), (9, 8, 7, 255), 0),
    "GIF": (encoded(Image.new("RGB", (7, 5), (255, 0, 0)), "GIF"), (2, 2), (255, 0, 0, 255), 0),
    "float TIFF": (
        encoded(Image.fromarray(np.full((3, 3), 0.5, np.float32), "F"), "TIFF"),
        (1, 1),
        (128, 128, 128, 255),
        1,
    ),
    "sRGB ICC profile": (
        encoded(Image.new("RGB", (4, 4), (12, 200, 99)), "PNG", icc_profile=srgb_icc()),
        (2, 2),
        (12, 200, 99, 255),
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_unusual_valid_image_is_accepted_and_converted(proof_server, name):
    data, (y, x), rgba, tolerance = VALID[name]
    original = Image.open(io.BytesIO(data))
    out = run_upscale(proof_server.url, data)
    assert out.shape[:2] == (original.height, original.width)
    if rgba is not None:
        diff = np.abs(out[y, x].astype(int) - np.array(rgba))
        assert diff.max() <= tolerance, (name, out[y, x].tolist(), rgba)


def test_unicode_prompt_is_accepted(proof_server):
    prompt = "un chat roux 🐈 — 赤い扉, ñandú, \u202eRTL\u202c, \u0000-free, e\u0301"
    resp = post_job(
        proof_server.url, {**INPAINT, "params": {"prompt": prompt}}, {"image": IMAGE, "mask": MASK}
    )
    assert resp.status_code == 202, resp.text
    assert wait_job(proof_server.url, resp.json()["id"])["state"] == "succeeded"


@pytest.mark.parametrize("kind", ["RGBA alpha", "16-bit", "palette", "RGB"])
def test_unusual_valid_masks_are_accepted(proof_server, kind):
    inside = box_mask(32, 24, (8, 8, 20, 16))
    if kind == "RGBA alpha":
        mask = encoded(Image.fromarray(np.dstack([np.zeros_like(inside)] * 3 + [inside]), "RGBA"))
    elif kind == "16-bit":
        mask = encoded(Image.fromarray(inside.astype(np.uint16) * 257))
    elif kind == "palette":
        mask = encoded(Image.fromarray(inside, "L").convert("P"))
    else:
        mask = encoded(Image.fromarray(inside, "L").convert("RGB"))
    image = noise_image(32, 24)
    resp = post_job(proof_server.url, INPAINT, {"image": png_bytes(image), "mask": mask})
    assert resp.status_code == 202, resp.text
    job = wait_job(proof_server.url, resp.json()["id"])
    out = fetch_rgba(proof_server.url, job)
    outside = inside == 0
    assert np.array_equal(out[outside], image[outside]), "only the masked area changed"
    assert not np.array_equal(out[~outside], image[~outside]), "the masked area changed"
