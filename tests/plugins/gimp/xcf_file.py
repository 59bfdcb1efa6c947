"""Read a GIMP .xcf's image size and layer list (name, size, offsets) from outside GIMP.

Layout (GIMP's devel-docs/xcf.txt): magic ``gimp xcf `` and a version (``file`` or ``vNNN``),
width, height, base type, precision (version 4+), the image properties, then pointers to the
layers (top first, 0-terminated; 64-bit from version 11). A layer starts with width, height,
type, name and its own properties; PROP_OFFSETS holds its position.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

PROP_END = 0
PROP_OFFSETS = 15


@dataclass
class XcfLayer:
    name: str
    width: int
    height: int
    x: int = 0
    y: int = 0


@dataclass
class Xcf:
    width: int
    height: int
    layers: list[XcfLayer]  # top first


class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def u32(self) -> int:
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return value

    def pointer(self, wide: bool) -> int:
        if not wide:
            return self.u32()
        (value,) = struct.unpack_from(">Q", self.data, self.pos)
        self.pos += 8
        return value

    def string(self) -> str:
        size = self.u32()
        raw = self.data[self.pos:self.pos + size]
        self.pos += size
        return raw.rstrip(b"\0").decode("utf-8")

    def properties(self) -> dict[int, bytes]:
        props = {}
        while True:
            kind, size = self.u32(), self.u32()
            if kind == PROP_END:
                return props
            props[kind] = self.data[self.pos:self.pos + size]
            self.pos += size


def read_xcf(path: str | Path) -> Xcf:
    data = Path(path).read_bytes()
    if not data.startswith(b"gimp xcf "):
        raise ValueError(f"{path} is not an XCF file")
    end = data.index(b"\0", 9)
    tag = data[9:end].decode()
    version = 0 if tag == "file" else int(tag[1:])
    head = _Reader(data, end + 1)
    width, height, _base_type = head.u32(), head.u32(), head.u32()
    if version >= 4:
        head.u32()  # precision
    head.properties()
    layers = []
    while (offset := head.pointer(version >= 11)) != 0:
        layers.append(_layer(_Reader(data, offset)))
    return Xcf(width, height, layers)


def _layer(reader: _Reader) -> XcfLayer:
    width, height, _type = reader.u32(), reader.u32(), reader.u32()
    layer = XcfLayer(reader.string(), width, height)
    offsets = reader.properties().get(PROP_OFFSETS)
    if offsets:
        layer.x, layer.y = struct.unpack(">ii", offsets)
    return layer
