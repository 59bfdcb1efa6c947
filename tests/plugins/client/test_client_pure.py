"""The client's pure helpers: regions, masks, PNG, progress text, journal."""

import io
import json
import zlib

import pytest
from aiedit_client import (
    AieditError,
    Client,
    JobJournal,
    Mask,
    Pixels,
    Region,
    crop_mask,
    crop_pixels,
    decode_png,
    describe_progress,
    encode_png,
    grow_region,
    mask_into_alpha,
    swap_red_blue,
)
from PIL import Image


def gradient(width, height):
    return Pixels(width, height, bytes(
        v for y in range(height) for x in range(width) for v in (x * 7 % 256, y * 5 % 256,
                                                                 (x + y) % 256, 200)))


def test_grow_region_adds_margin_and_clamps_to_the_image():
    assert grow_region(10, 20, 30, 40, 8, 100, 100) == Region(2, 12, 36, 36)
    assert grow_region(0, 0, 100, 50, 32, 100, 50) == Region(0, 0, 100, 50)
    assert grow_region(90, 5, 100, 10, 16, 100, 20) == Region(74, 0, 26, 20)


def test_grow_region_rejects_empty_bounds():
    with pytest.raises(ValueError, match="empty"):
        grow_region(5, 5, 5, 9, 4, 10, 10)


def test_pixels_and_mask_check_their_size():
    with pytest.raises(ValueError, match="needs 16 bytes"):
        Pixels(2, 2, b"\0" * 15)
    with pytest.raises(ValueError, match="needs 4 bytes"):
        Mask(2, 2, b"\0" * 5)


def test_crop_takes_the_named_rectangle():
    pixels = gradient(10, 6)
    part = crop_pixels(pixels, Region(3, 2, 4, 3))
    assert part.width == 4 and part.height == 3
    assert part.data[:4] == pixels.data[(2 * 10 + 3) * 4:(2 * 10 + 3) * 4 + 4]
    mask = Mask(10, 6, bytes(range(60)))
    assert crop_mask(mask, Region(3, 2, 4, 3)).data == bytes([23, 24, 25, 26, 33, 34, 35, 36,
                                                              43, 44, 45, 46])


def test_mask_into_alpha_multiplies():
    pixels = Pixels(3, 1, bytes([1, 2, 3, 255, 4, 5, 6, 255, 7, 8, 9, 100]))
    out = mask_into_alpha(pixels, Mask(3, 1, bytes([0, 128, 255])))
    assert out.data[3::4] == bytes([0, 128, 100])
    assert out.data[0:3] == bytes([1, 2, 3])


def test_swap_red_blue_is_its_own_inverse():
    data = bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert swap_red_blue(data) == bytes([3, 2, 1, 4, 7, 6, 5, 8])
    assert swap_red_blue(swap_red_blue(data)) == data


def test_encode_png_is_read_back_by_pillow():
    pixels = gradient(17, 9)
    image = Image.open(io.BytesIO(encode_png(pixels)))
    assert image.mode == "RGBA" and image.size == (17, 9)
    assert image.tobytes() == pixels.data
    mask = Mask(5, 3, bytes(range(0, 150, 10)))
    assert Image.open(io.BytesIO(encode_png(mask))).tobytes() == mask.data


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA", "P"])
@pytest.mark.parametrize("optimize", [False, True])
def test_decode_png_matches_pillow(mode, optimize):
    source = Image.frombytes("RGBA", (23, 11), gradient(23, 11).data).convert(mode)
    buffer = io.BytesIO()
    source.save(buffer, "PNG", optimize=optimize)
    decoded = decode_png(buffer.getvalue())
    assert (decoded.width, decoded.height) == (23, 11)
    assert decoded.data == source.convert("RGBA").tobytes()


def test_decode_png_16_bit():
    source = Image.frombytes("RGBA", (8, 4), gradient(8, 4).data).convert("RGB")
    raw = b"".join(b"\0" + bytes(v for c in source.tobytes()[y * 24:(y + 1) * 24] for v in (c, 0))
                   for y in range(4))
    import struct

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 4, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    assert decode_png(png).data == source.convert("RGBA").tobytes()


@pytest.mark.parametrize("job, text", [
    ({"state": "queued", "queue_position": 2}, "Queued (2 ahead)"),
    ({"state": "queued", "queue_position": 0}, "Queued (next)"),
    ({"state": "running", "progress": {"step": 5, "total": 20, "stage": "denoising",
                                       "eta_s": 12.2}}, "Denoising 5/20 — 12 s left"),
    ({"state": "running", "progress": {"stage": "loading_model"}}, "Loading model"),
    ({"state": "running", "progress": {"step": 1, "total": 4, "stage": "tiles",
                                       "eta_s": 125}}, "Tiles 1/4 — 2 min 05 s left"),
    ({"state": "succeeded"}, "Done"),
    ({"state": "failed", "error": {"message": "Out of memory"}}, "Failed: Out of memory"),
])
def test_describe_progress(job, text):
    assert describe_progress(job) == text


def test_client_rejects_a_url_without_scheme():
    with pytest.raises(AieditError, match="should look like http://127.0.0.1:8790"):
        Client("127.0.0.1:8790")


def test_journal_survives_reopening(tmp_path):
    path = str(tmp_path / "sub" / "pending.json")
    JobJournal(path).add("a", operation="inpaint", region={"x": 1})
    JobJournal(path).add("b", operation="upscale")
    journal = JobJournal(path)
    assert [e["job_id"] for e in journal.entries()] == ["a", "b"]
    journal.remove("a")
    assert [e["job_id"] for e in JobJournal(path).entries()] == ["b"]
    assert json.loads(open(path).read())[0]["operation"] == "upscale"


def test_journal_ignores_a_damaged_file(tmp_path):
    path = tmp_path / "pending.json"
    path.write_text("{not json")
    assert JobJournal(str(path)).entries() == []
