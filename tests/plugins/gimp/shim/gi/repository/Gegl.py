import enum

FORMATS = {"R'G'B'A u8": 4, "Y u8": 1}


class AbyssPolicy(enum.IntEnum):
    NONE = 0
    CLAMP = 1
    LOOP = 2
    BLACK = 3
    WHITE = 4


class Rectangle:
    def __init__(self, x, y, width, height):
        self.x, self.y, self.width, self.height = x, y, width, height

    @classmethod
    def new(cls, x, y, width, height):
        return cls(x, y, width, height)


class Buffer:
    """A drawable's buffer: reads see its own pending writes; ``flush`` hands them to the
    drawable, so other buffers (and GIMP) see them only then."""

    def __init__(self, drawable):
        self._drawable = drawable
        self._pending = []

    def get_extent(self):
        return Rectangle(0, 0, self._drawable.get_width(), self._drawable.get_height())

    def get(self, rect, scale, fmt, abyss):
        assert scale == 1.0, "the plug-in reads at scale 1.0"
        channels = _channels(fmt)
        assert abyss in (AbyssPolicy.NONE, AbyssPolicy.CLAMP), abyss
        out = bytearray(rect.width * rect.height * channels)
        store = self._drawable._store_with(self._pending)
        for row in range(rect.height):
            for col in range(rect.width):
                px = store.pixel(rect.x + col, rect.y + row, abyss)
                at = (row * rect.width + col) * channels
                out[at:at + channels] = _convert(px, channels)
        return bytes(out)

    def set(self, rect, fmt, data):
        channels = _channels(fmt)
        if len(data) != rect.width * rect.height * channels:
            raise ValueError(f"buffer.set: {len(data)} bytes for {rect.width}x{rect.height} "
                             f"{fmt}")
        self._pending.append((rect, channels, bytes(data)))

    def flush(self):
        self._drawable._commit(self._pending)
        self._pending = []


def _channels(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} not supported by the shim")
    return FORMATS[fmt]


def _convert(px, channels):
    """px is RGBA; channels 1 means Y u8 (gray)."""
    if channels == 4:
        return px
    r, g, b, _a = px
    return bytes([(r * 54 + g * 183 + b * 19) // 256])
