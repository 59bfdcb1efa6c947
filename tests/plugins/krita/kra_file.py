"""Read a Krita .kra from outside Krita: its layer list and a paint layer's pixels.

A .kra is a zip: ``maindoc.xml`` lists the layers (name, file), ``<image>/layers/<file>`` holds a
layer's pixels as 64x64 tiles, each LZF-compressed with its channels stored one after another.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image

NS = "{http://www.calligra.org/DTD/krita}"


@dataclass
class KraLayer:
    name: str
    nodetype: str
    filename: str
    x: int
    y: int


class Kra:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path)
        root = ET.fromstring(self.zip.read("maindoc.xml"))
        self.image = root.find(f"{NS}IMAGE")
        self.width, self.height = int(self.image.get("width")), int(self.image.get("height"))

    def layers(self) -> list[KraLayer]:
        """Top-level layers and masks, top first, as maindoc.xml lists them."""
        return _layers_in(self.image)

    def layer(self, name: str) -> KraLayer:
        return next(layer for layer in self.layers() if layer.name == name)

    def children(self, group: str) -> list[KraLayer]:
        """The layers inside top-level group layer ``group``, top first."""
        element = next(el for el in self.image.find(f"{NS}layers") if el.get("name") == group)
        return _layers_in(element)

    def merged(self) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(self.zip.read("mergedimage.png"))).convert("RGBA"))

    def pixels(self, layer: KraLayer) -> np.ndarray:
        """An 8-bit RGBA paint layer as a height x width x 4 array in image coordinates."""
        data = self.zip.read(f"{self.image.get('name')}/layers/{layer.filename}")
        out = np.zeros((self.height, self.width, 4), np.uint8)
        for x, y, tile in _tiles(data):
            bgra = tile.reshape(64, 64, 4)
            top, left = y + layer.y, x + layer.x
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + 64, self.height), min(left + 64, self.width)
            if y1 > y0 and x1 > x0:
                out[y0:y1, x0:x1] = bgra[y0 - top:y1 - top, x0 - left:x1 - left][..., [2, 1, 0, 3]]
        return out


def _layers_in(element) -> list[KraLayer]:
    return [KraLayer(el.get("name"), el.get("nodetype"), el.get("filename"),
                     int(el.get("x", 0)), int(el.get("y", 0)))
            for el in element.find(f"{NS}layers")]


def _tiles(data: bytes):
    header_end = 0
    header = {}
    for _ in range(5):
        line_end = data.index(b"\n", header_end)
        key, value = data[header_end:line_end].decode().split(" ")
        header[key] = int(value)
        header_end = line_end + 1
    assert header["PIXELSIZE"] == 4, f"only 8-bit RGBA layers, got {header}"
    pos = header_end
    for _ in range(header["DATA"]):
        line_end = data.index(b"\n", pos)
        x, y, method, size = data[pos:line_end].decode().split(",")
        assert method == "LZF", method
        chunk = data[line_end + 1:line_end + 1 + int(size)]
        pos = line_end + 1 + int(size)
        yield int(x), int(y), _tile_pixels(chunk)


def _tile_pixels(chunk: bytes) -> np.ndarray:
    size = 64 * 64 * 4
    if chunk[0] == 1:  # compressed: channels planar
        planar = np.frombuffer(lzf_decompress(chunk[1:], size), np.uint8)
        return planar.reshape(4, 64 * 64).T.reshape(-1)
    return np.frombuffer(chunk[1:1 + size], np.uint8)


def lzf_decompress(data: bytes, expected: int) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            out += data[i:i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5
        ref = len(out) - ((ctrl & 0x1F) << 8) - 1
        if length == 7:
            length += data[i]
            i += 1
        ref -= data[i]
        i += 1
        for _ in range(length + 2):
            out.append(out[ref])
            ref += 1
    assert len(out) == expected, f"LZF gave {len(out)} bytes, expected {expected}"
    return bytes(out)
