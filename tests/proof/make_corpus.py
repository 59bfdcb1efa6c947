"""Write the hostile-input corpus: `python -m tests.proof.make_corpus` (re)creates every file in
tests/proof/corpus/. Each file is built here from first principles, so the corpus is reviewable
and reproducible; what the server must answer for each one is in test_hostile_inputs.py."""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

CORPUS_DIR = Path(__file__).with_name("corpus")


def _encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _noise(width: int, height: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(7)
    channels = len(mode)
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, idat: bytes, extra: bytes = b"", color_type: int = 6) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + extra
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


# --- broken files -----------------------------------------------------------------------------


def truncated(fmt: str, **options) -> Callable[[], bytes]:
    def build() -> bytes:
        data = _encoded(_noise(64, 64), fmt, **options)
        return data[: len(data) // 2]

    return build


def png_bad_crc() -> bytes:
    data = bytearray(_encoded(_noise(32, 32), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF  # inside the compressed pixels: the chunk CRC no longer matches
    return bytes(data)


def png_bad_zlib() -> bytes:
    return _png(32, 32, b"\x78\x9c" + b"\xde\xad\xbe\xef" * 64)


def jpeg_no_frame_header() -> bytes:
    """A JPEG whose start-of-frame marker is renamed: no decoder can know its size."""
    data = bytearray(_encoded(_noise(32, 32), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = 0x01  # TEM: a marker with no meaning here
    return bytes(data)


def webp_bad_bitstream() -> bytes:
    data = bytearray(_encoded(_noise(32, 32), "WEBP", quality=80))
    for i in range(30, len(data)):
        data[i] = (data[i] * 7 + 13) & 0xFF
    return bytes(data)


def gif_bad_lzw() -> bytes:
    data = bytearray(_encoded(_noise(32, 32).convert("P"), "GIF"))
    start = data.index(b",") + 11  # image descriptor, then LZW minimum code size
    data[start : start + 8] = b"\xff" * 8
    return bytes(data[: start + 8]) + b"\x00;"


# --- size lies and bombs ----------------------------------------------------------------------


def png_header(width: int, height: int) -> Callable[[], bytes]:
    return lambda: _png(width, height, zlib.compress(b"\x00" * 16))


def png_deflate_bomb(width: int, height: int) -> Callable[[], bytes]:
    """A real PNG of black 1-bit pixels: a few KB on disk, `width` x `height` once decoded."""

    def build() -> bytes:
        row = b"\x00" * (1 + (width + 7) // 8)
        idat = zlib.compress(row * height, 9)
        ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b"")
        )

    return build


def png_text_bomb() -> bytes:
    """A 1x1 PNG with a compressed text chunk that inflates to 256 MB."""
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * (256 << 20), 9)
    idat = zlib.compress(b"\x00" + b"\x00\x00\x00\xff")
    return _png(1, 1, idat, extra=_png_chunk(b"zTXt", ztxt))


def jpeg_header(width: int, height: int) -> bytes:
    data = bytearray(_encoded(_noise(16, 16), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_header(width: int, height: int) -> bytes:
    data = bytearray(_encoded(_noise(16, 16).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    desc = data.index(b",")
    data[desc + 5 : desc + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_header(width: int, height: int) -> bytes:
    """A lossless WebP whose size field is rewritten (14-bit fields: at most 16384 a side)."""
    data = bytearray(_encoded(_noise(16, 16), "WEBP", lossless=True))
    vp8l = data.index(b"VP8L") + 8
    bits = int.from_bytes(data[vp8l + 1 : vp8l + 5], "little")
    bits = (bits & ~0xFFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[vp8l + 1 : vp8l + 5] = bits.to_bytes(4, "little")
    return bytes(data)


def tiff_header(width: int, height: int) -> bytes:
    data = bytearray(_encoded(_noise(16, 16), "TIFF"))
    for tag in (256, 257):  # ImageWidth, ImageLength
        entry = data.index(struct.pack("<H", tag), 8)
        kind = struct.unpack("<H", data[entry + 2 : entry + 4])[0]
        value = width if tag == 256 else height
        fmt = "<H" if kind == 3 else "<I"
        data[entry + 8 : entry + 8 + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


def bmp_zero() -> bytes:
    data = bytearray(_encoded(_noise(4, 4), "BMP"))
    data[18:26] = struct.pack("<ii", 0, 0)
    return bytes(data)


# --- not images -------------------------------------------------------------------------------


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'


def html() -> bytes:
    return b"<!doctype html><script>alert(1)</script>"


def zip_archive() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        entry = zipfile.ZipInfo("image.png", date_time=(2020, 1, 1, 0, 0, 0))
        zf.writestr(entry, _encoded(_noise(8, 8), "PNG"))
    return buf.getvalue()


def elf() -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 57


def psd() -> bytes:
    """A format Pillow can read but the API does not accept."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 8, 8, 8, 3)
    return header + struct.pack(">I", 0) * 3 + struct.pack(">H", 0) + b"\x00" * 192


CORPUS: dict[str, Callable[[], bytes]] = {
    "truncated.png": truncated("PNG"),
    "truncated.jpg": truncated("JPEG", quality=90),
    "truncated.webp": truncated("WEBP", quality=80),
    "truncated.gif": lambda: _encoded(_noise(64, 64).convert("P"), "GIF")[:300],
    "truncated.tiff": truncated("TIFF"),
    "corrupt-crc.png": png_bad_crc,
    "corrupt-zlib.png": png_bad_zlib,
    "corrupt-no-frame.jpg": jpeg_no_frame_header,
    "corrupt-bitstream.webp": webp_bad_bitstream,
    "corrupt-lzw.gif": gif_bad_lzw,
    "bomb-12000x12000.png": png_deflate_bomb(12000, 12000),
    "bomb-16000x8000.png": png_deflate_bomb(16000, 8000),
    "bomb-text.png": png_text_bomb,
    "header-30000x30000.png": png_header(30000, 30000),
    "header-30000x30000.jpg": lambda: jpeg_header(30000, 30000),
    "header-30000x30000.gif": lambda: gif_header(30000, 30000),
    "header-30000x30000.tiff": lambda: tiff_header(30000, 30000),
    "header-16384x16384.webp": lambda: webp_header(16384, 16384),
    "header-1x100000.png": png_header(1, 100000),
    "zero-0x0.png": png_header(0, 0),
    "zero-0x0.gif": lambda: gif_header(0, 0),
    "zero-0x0.bmp": bmp_zero,
    "zero-0x0.tiff": lambda: tiff_header(0, 0),
    "empty.png": lambda: b"",
    "text.png": lambda: b"this is not an image, just text named .png\n",
    "svg.png": svg,
    "html.png": html,
    "zip.png": zip_archive,
    "elf.png": elf,
    "psd.png": psd,
}


def write(directory: Path = CORPUS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in CORPUS.items():
        path = directory / name
        path.write_bytes(build())
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR):
        print(f"{path.stat().st_size:>9}  {path.name}")
