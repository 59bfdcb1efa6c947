"""Krita's raw sRGB pixels to and from the RGBA the server takes. Pure Python: no Qt, no Krita.

Krita hands out raw bytes in the document's own colour space. Every space other than integer
sRGB RGBA is first converted by Krita's own colour engine (``colour.py``: Adobe RGB, Display
P3, Rec. 2020, linear and float, grayscale, CMYK, Lab all go through it), so what is left here
is sRGB BGRA at 8 or 16 bits (integer depths are BGRA in memory, little-endian). Everything is
done with bulk slicing of byte strings, never value by value, so a 4096² 16-bit layer takes a
fraction of a second, and it runs on a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass

SRGB_PROFILE = "sRGB-elle-V2-srgbtrc.icc"
# Profiles that are sRGB (the sRGB curve and primaries): their integer pixels need no conversion.
SRGB_PROFILES = frozenset(p.lower() for p in (
    SRGB_PROFILE, "sRGB-elle-V4-srgbtrc.icc", "sRGB built-in", "sRGB IEC61966-2.1",
    "sRGB IEC61966-2-1 black scaled", "sRGB IEC61966-2-1 no black scaling"))
INTEGER_DEPTHS = ("U8", "U16")
BYTES_PER_CHANNEL = {"U8": 1, "U16": 2, "F16": 2, "F32": 4}


@dataclass(frozen=True)
class Layout:
    """A document's colour space: ``doc.colorModel()``, ``colorDepth()``, ``colorProfile()``."""

    model: str
    depth: str
    profile: str = ""

    @property
    def is_srgb(self) -> bool:
        """Integer sRGB RGBA: read and written without Krita's colour engine."""
        return (self.model == "RGBA" and self.depth in INTEGER_DEPTHS
                and self.profile.lower() in SRGB_PROFILES)

    @property
    def srgb_depth(self) -> str:
        """The sRGB depth this space is exchanged at: 8 bits for 8-bit spaces, else 16."""
        return "U8" if self.depth == "U8" else "U16"


def layout_of(model: str, depth: str, profile: str = "") -> Layout:
    return Layout(model, depth, profile or "")


@dataclass
class Raw:
    """sRGB BGRA pixels as Krita stores them (``depth`` U8 or U16), read on the GUI thread and
    converted on a worker thread."""

    width: int
    height: int
    data: bytes
    depth: str = "U8"

    def __post_init__(self):
        size = self.width * self.height * 4 * BYTES_PER_CHANNEL[self.depth]
        if len(self.data) != size:
            raise ValueError(f"{self.width}x{self.height} {self.depth} BGRA needs {size} bytes, "
                             f"got {len(self.data)}")


def swap_red_blue(data: bytes) -> bytes:
    """RGBA8 <-> BGRA8."""
    out = bytearray(data)
    out[0::4], out[2::4] = data[2::4], data[0::4]
    return bytes(out)


def swap_red_blue16(data: bytes) -> bytes:
    """RGBA16 <-> BGRA16 (little-endian words)."""
    out = bytearray(data)
    out[0::8], out[1::8], out[4::8], out[5::8] = data[4::8], data[5::8], data[0::8], data[1::8]
    return bytes(out)


def to_rgba8(data: bytes, depth: str) -> bytes:
    """sRGB BGRA (U8 or U16) as 8-bit RGBA. 16-bit values keep their high byte (within one
    8-bit code value of rounding)."""
    data = bytes(data)
    if depth == "U16":
        data = data[1::2]
    elif depth != "U8":
        raise ValueError(f"sRGB BGRA comes as U8 or U16, not {depth}")
    return swap_red_blue(data)


def to_rgba16(data: bytes, depth: str) -> bytes:
    """sRGB BGRA (U8 or U16) as 16-bit little-endian RGBA."""
    data = bytes(data)
    if depth == "U8":
        return widen(swap_red_blue(data))
    return swap_red_blue16(data)


def from_rgba8(rgba: bytes, depth: str) -> bytes:
    """8-bit RGBA as sRGB BGRA at ``depth`` (U8, or U16 with v * 257)."""
    bgra = swap_red_blue(bytes(rgba))
    return widen(bgra) if depth == "U16" else bgra


def from_rgba16(rgba16: bytes, depth: str) -> bytes:
    """16-bit little-endian RGBA as sRGB BGRA at ``depth``."""
    bgra = swap_red_blue16(bytes(rgba16))
    return bgra[1::2] if depth == "U8" else bgra


def widen(data8: bytes) -> bytes:
    """8-bit values as 16-bit little-endian ones (v * 257 = the byte twice)."""
    out = bytearray(2 * len(data8))
    out[0::2] = data8
    out[1::2] = data8
    return bytes(out)

