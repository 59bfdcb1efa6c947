"""Krita pixel layouts to and from 8-bit sRGB RGBA. Pure Python: no Qt, no Krita.

Krita hands out raw bytes in the document's own layout: integer depths are BGRA (U8, U16),
float depths RGBA (F16, F32), grayscale is gray + alpha. Profiles whose name says linear
(``g10``, ``linear``, ``scRGB``) store linear light; the server works in sRGB, so those values
are encoded with the sRGB curve on the way out and decoded on the way back.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from functools import lru_cache

SUPPORTED_MODELS = ("RGBA", "GRAYA")
SUPPORTED_DEPTHS = ("U8", "U16", "F16", "F32")
LINEAR_MARKERS = ("g10", "linear", "scrgb")


class UnsupportedDocument(ValueError):
    """The document's colour model or depth cannot be converted; the message says what to do."""


@dataclass(frozen=True)
class Layout:
    """How a document stores one pixel."""

    model: str
    depth: str
    linear: bool

    @property
    def channels(self) -> int:
        return 4 if self.model == "RGBA" else 2

    @property
    def bytes_per_channel(self) -> int:
        return {"U8": 1, "U16": 2, "F16": 2, "F32": 4}[self.depth]

    @property
    def pixel_size(self) -> int:
        return self.channels * self.bytes_per_channel


def layout_of(model: str, depth: str, profile: str = "") -> Layout:
    """The layout of a document (``doc.colorModel()``, ``colorDepth()``, ``colorProfile()``);
    raises ``UnsupportedDocument`` for colour spaces aiedit does not convert."""
    if model not in SUPPORTED_MODELS:
        raise UnsupportedDocument(
            f"aiedit works on RGB and grayscale images; this one is {model}. Convert it with "
            "Image > Convert Image Color Space (RGB/Alpha) and try again.")
    if depth not in SUPPORTED_DEPTHS:
        raise UnsupportedDocument(
            f"aiedit reads 8-bit, 16-bit and float images; this one is {depth}. Convert it with "
            "Image > Convert Image Color Space and try again.")
    profile = (profile or "").lower()
    return Layout(model, depth, any(marker in profile for marker in LINEAR_MARKERS))


def to_rgba8(data: bytes, layout: Layout) -> bytes:
    """Krita's raw pixels in ``layout`` as 8-bit sRGB RGBA."""
    data = bytes(data)
    if len(data) % layout.pixel_size:
        raise ValueError(f"{len(data)} bytes is not a whole number of {layout.depth} pixels")
    if layout.depth == "U8" and not layout.linear:
        return _u8_to_rgba(data, layout.model)
    color, alpha = _decode_luts(layout)
    values = _channel_values(data, layout.depth)
    n = layout.channels
    out = bytearray(len(values))
    for c in range(n - 1):
        out[c::n] = bytes(map(color, values[c::n]))
    out[n - 1::n] = bytes(map(alpha, values[n - 1::n]))
    return _reorder_to_rgba(bytes(out), layout)


def from_rgba8(rgba: bytes, layout: Layout) -> bytes:
    """8-bit sRGB RGBA as Krita's raw pixels in ``layout``."""
    rgba = bytes(rgba)
    if len(rgba) % 4:
        raise ValueError(f"{len(rgba)} bytes is not a whole number of RGBA pixels")
    if layout.depth == "U8" and not layout.linear:
        return _rgba_to_u8(rgba, layout.model)
    ordered = _reorder_from_rgba(rgba, layout)
    color, alpha = _encode_luts(layout)
    n = layout.channels
    values: list = [0] * len(ordered)
    for c in range(n - 1):
        values[c::n] = [color[v] for v in ordered[c::n]]
    values[n - 1::n] = [alpha[v] for v in ordered[n - 1::n]]
    return _pack_values(values, layout.depth)


# -- 8-bit fast paths


def _u8_to_rgba(data: bytes, model: str) -> bytes:
    if model == "RGBA":
        return _swap_red_blue(data)
    out = bytearray(len(data) * 2)
    gray = data[0::2]
    out[0::4], out[1::4], out[2::4], out[3::4] = gray, gray, gray, data[1::2]
    return bytes(out)


def _rgba_to_u8(rgba: bytes, model: str) -> bytes:
    if model == "RGBA":
        return _swap_red_blue(rgba)
    out = bytearray(len(rgba) // 2)
    out[0::2] = _luma(rgba)
    out[1::2] = rgba[3::4]
    return bytes(out)


def _swap_red_blue(data: bytes) -> bytes:
    out = bytearray(data)
    out[0::4], out[2::4] = data[2::4], data[0::4]
    return bytes(out)


def _luma(rgba: bytes) -> bytes:
    return bytes((r * 54 + g * 183 + b * 19 + 128) >> 8
                 for r, g, b in zip(rgba[0::4], rgba[1::4], rgba[2::4]))


# -- channel order


def _reorder_to_rgba(native8: bytes, layout: Layout) -> bytes:
    """8-bit values still in Krita's channel order, as RGBA."""
    if layout.model == "GRAYA":
        return _u8_to_rgba(native8, "GRAYA")
    return _swap_red_blue(native8) if layout.depth in ("U8", "U16") else native8


def _reorder_from_rgba(rgba: bytes, layout: Layout) -> bytes:
    if layout.model == "GRAYA":
        return _rgba_to_u8(rgba, "GRAYA")
    return _swap_red_blue(rgba) if layout.depth in ("U8", "U16") else rgba


# -- values and transfer curves


def _channel_values(data: bytes, depth: str):
    if depth == "U8":
        return data
    if depth == "U16":
        return array("H", data)
    if depth == "F32":
        return array("f", data)
    return struct.unpack(f"={len(data) // 2}e", data)


def _pack_values(values: list, depth: str) -> bytes:
    if depth == "U8":
        return bytes(values)
    if depth == "U16":
        return array("H", values).tobytes()
    if depth == "F32":
        return array("f", values).tobytes()
    return struct.pack(f"={len(values)}e", *values)


def srgb_encode(linear: float) -> float:
    """Linear light (0..1) to the sRGB curve."""
    if linear <= 0.0031308:
        return 12.92 * linear
    return 1.055 * linear ** (1 / 2.4) - 0.055


def srgb_decode(encoded: float) -> float:
    """The sRGB curve (0..1) to linear light."""
    if encoded <= 0.04045:
        return encoded / 12.92
    return ((encoded + 0.055) / 1.055) ** 2.4


@lru_cache(maxsize=None)
def _u16_table(linear: bool) -> bytes:
    if not linear:
        return bytes((v * 255 + 32767) // 65535 for v in range(65536))
    return bytes(round(255 * srgb_encode(v / 65535)) for v in range(65536))


def _decode_luts(layout: Layout):
    """Functions from one stored channel value to an 8-bit value: (colour, alpha)."""
    if layout.depth in ("U8", "U16"):
        scale = 257 if layout.depth == "U8" else 1
        color_table = _u16_table(layout.linear)
        alpha_table = _u16_table(False)
        return ((lambda v: color_table[v * scale]), (lambda v: alpha_table[v * scale]))
    color_table, alpha_table = _u16_table(layout.linear), _u16_table(False)

    def quantize(value: float) -> int:
        if value != value or value <= 0.0:  # NaN or negative
            return 0
        return 65535 if value >= 1.0 else int(value * 65535 + 0.5)

    return ((lambda v: color_table[quantize(v)]), (lambda v: alpha_table[quantize(v)]))


@lru_cache(maxsize=None)
def _encode_luts(layout: Layout):
    """Tables from an 8-bit value to the stored channel value: (colour, alpha)."""
    def color_fraction(v: int) -> float:
        return srgb_decode(v / 255) if layout.linear else v / 255

    if layout.depth in ("U8", "U16"):
        top = 255 if layout.depth == "U8" else 65535
        color = tuple(round(color_fraction(v) * top) for v in range(256))
        alpha = tuple(round(v / 255 * top) for v in range(256))
        return color, alpha
    return tuple(color_fraction(v) for v in range(256)), tuple(v / 255 for v in range(256))
