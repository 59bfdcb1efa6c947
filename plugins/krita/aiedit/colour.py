"""Colour conversion by Krita's own colour engine, on a scratch document.

The server works in sRGB. A document in any other space (Adobe RGB, Display P3, Rec. 2020,
linear or float, grayscale, CMYK, Lab) has the pixels it sends converted to sRGB, and the
results converted back to its space and depth, by Krita (LittleCMS with the document's
profile), never by guesswork here. The conversion runs on a hidden scratch document holding only
the region, so the user's document and its undo history are untouched. GUI thread only.
"""

from __future__ import annotations

from PyQt5.QtCore import QByteArray

from .pixels import SRGB_PROFILE, Layout, Raw


class ConversionFailed(Exception):
    """Krita could not convert between the two colour spaces; the message says which."""


def to_srgb(data: bytes, width: int, height: int, layout: Layout) -> Raw:
    """Pixels in ``layout`` as sRGB BGRA (8 bits for 8-bit spaces, else 16)."""
    if layout.is_srgb:
        return Raw(width, height, bytes(data), layout.depth)
    depth = layout.srgb_depth
    converted = _convert(bytes(data), width, height, layout, Layout("RGBA", depth, SRGB_PROFILE))
    return Raw(width, height, converted, depth)


def from_srgb(raw: Raw, layout: Layout) -> bytes:
    """sRGB BGRA as pixels in ``layout``, ready for ``setPixelData``."""
    if layout.is_srgb and raw.depth == layout.depth:
        return raw.data
    source = Layout("RGBA", raw.depth, SRGB_PROFILE)
    return _convert(raw.data, raw.width, raw.height, source, layout)


def _convert(data: bytes, width: int, height: int, source: Layout, target: Layout) -> bytes:
    from krita import Krita

    scratch = Krita.instance().createDocument(width, height, "aiedit colour conversion",
                                              source.model, source.depth, source.profile, 72.0)
    if scratch is None:
        raise ConversionFailed(f"Krita could not make a {source.model} {source.depth} "
                               f"{source.profile} scratch image to convert colours.")
    try:
        scratch.setBatchmode(True)
        layer = scratch.topLevelNodes()[0]
        layer.setPixelData(QByteArray(data), 0, 0, width, height)
        if not scratch.setColorSpace(target.model, target.depth, target.profile):
            raise ConversionFailed(
                f"Krita cannot convert {source.model}/{source.depth} ({source.profile}) to "
                f"{target.model}/{target.depth} ({target.profile}): convert the image with "
                "Image > Convert Image Color Space and try again.")
        scratch.waitForDone()
        return bytes(layer.pixelData(0, 0, width, height))
    finally:
        scratch.close()
