"""Run an image-to-image net over overlapping tiles and blend the seams.

Memory stays at the output buffer plus one tile: tiles are processed in rows, and each tile is
blended into what its left and upper neighbours already wrote, with a linear ramp across the
overlap. The outer quarter of the overlap on each side is never used (a tile does not write it,
or its neighbour overwrites it), since nets are least reliable at a tile's edge."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Net = Callable[[np.ndarray], np.ndarray]  # H x W x 3 float32 [0, 1] -> sH x sW x 3
MIN_TILE = 32


class OutOfMemory(RuntimeError):
    """A net ran out of device memory on a tile of `tile` pixels."""

    def __init__(self, message: str = "out of memory", tile: int = 0):
        super().__init__(message)
        self.tile = tile


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start and end of each tile along one axis: as few tiles as fit `tile`, evenly sized,
    neighbours sharing `overlap` pixels."""
    if tile <= 2 * overlap:
        raise ValueError(f"tile size {tile} must be more than twice the overlap {overlap}")
    if length <= tile:
        return [(0, length)]
    count = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (count - 1) * overlap) // count)
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return [(start, start + size) for start in starts]


def ramp(length: int, overlap: int) -> np.ndarray:
    """Weights 0 -> 1 over `overlap` pixels of a `length`-pixel edge: 0 for the outer quarter,
    linear through the middle half, 1 beyond."""
    positions = np.arange(length, dtype=np.float32) + 0.5
    if overlap <= 0:
        return np.ones(length, np.float32)
    return np.clip((positions - overlap / 4) / (overlap / 2), 0.0, 1.0)


def tile_count(width: int, height: int, tile: int, overlap: int) -> int:
    return len(spans(width, tile, overlap)) * len(spans(height, tile, overlap))


def run_tiled(rgb: np.ndarray, net: Net, scale: int, tile: int, overlap: int,
              on_tile: Callable[[int, int], None] | None = None,
              out: np.ndarray | None = None, edge_pad: int = 0) -> np.ndarray:
    """Apply `net` (which enlarges by the integer `scale`) to an H x W x 3 uint8 or uint16
    image, tile by tile, into an sH x sW x 3 buffer of the same type (`out` if given): nets
    compute in float, so 16-bit images keep their depth. Tiles on the image's border get
    `edge_pad` pixels of mirrored context there. `on_tile(done, total)` is called before each
    tile and once at the end (it may raise to stop)."""
    height, width = rgb.shape[:2]
    if out is None:
        out = np.empty((height * scale, width * scale, 3), rgb.dtype)
    rows, cols = spans(height, tile, overlap), spans(width, tile, overlap)
    total = len(rows) * len(cols)
    index = 0
    for row, (y0, y1) in enumerate(rows):
        for col, (x0, x1) in enumerate(cols):
            if on_tile:
                on_tile(index, total)
            piece = _run_padded(net, rgb, (x0, y0, x1, y1), scale, edge_pad)
            left = (cols[col - 1][1] - x0) * scale if col else 0
            top = (rows[row - 1][1] - y0) * scale if row else 0
            keep_w = _kept(cols, col, scale)
            keep_h = _kept(rows, row, scale)
            oy, ox = y0 * scale, x0 * scale
            _blend_into(out[oy:oy + keep_h, ox:ox + keep_w], piece[:keep_h, :keep_w], left, top)
            index += 1
    if on_tile:
        on_tile(total, total)
    return out


def run_tiled_retrying(rgb: np.ndarray, net, tile: int, overlap: int,
                       on_tile: Callable[[int, int], None] | None = None,
                       out: np.ndarray | None = None) -> np.ndarray:
    """`run_tiled` with `net.scale`; when the net runs out of memory, once more with tiles half
    as big (overlap shrunk to fit). Raises OutOfMemory (with the tile size) if that fails too."""
    overlap = min(overlap, (tile - 1) // 2)
    pad = getattr(net, "edge_pad", 0)
    try:
        return run_tiled(rgb, net, net.scale, tile, overlap, on_tile, out=out, edge_pad=pad)
    except OutOfMemory as exc:
        _release(net)
        smaller = max(MIN_TILE, tile // 2)
        if smaller == tile:
            raise OutOfMemory(str(exc), tile) from exc
    try:
        return run_tiled(rgb, net, net.scale, smaller, min(overlap, smaller // 4), on_tile,
                         out=out, edge_pad=pad)
    except OutOfMemory as exc:
        _release(net)
        raise OutOfMemory(str(exc), smaller) from exc


def _release(net) -> None:
    release = getattr(net, "release_memory", None)
    if release:
        release()


def _kept(parts: list[tuple[int, int]], index: int, scale: int) -> int:
    """How much of a tile to write along one axis: all of it, except the part of the overlap
    where the next tile will take over completely (its least reliable edge)."""
    start, end = parts[index]
    if index + 1 == len(parts):
        return (end - start) * scale
    next_start = parts[index + 1][0]
    overlap = (end - next_start) * scale
    return (next_start - start) * scale + max(0, math.ceil(0.75 * overlap - 0.5))


def _run_padded(net: Net, rgb: np.ndarray, box, scale: int, pad: int) -> np.ndarray:
    """The net on one tile, with `pad` mirrored pixels added on the sides that are the image's
    own border (as realesrgan-ncnn does), cropped off again afterwards."""
    x0, y0, x1, y1 = box
    height, width = rgb.shape[:2]
    before_y, after_y = (pad if y0 == 0 else 0), (pad if y1 == height else 0)
    before_x, after_x = (pad if x0 == 0 else 0), (pad if x1 == width else 0)
    crop = rgb[y0:y1, x0:x1].astype(np.float32) / _top(rgb.dtype)
    if pad:
        crop = np.pad(crop, ((before_y, after_y), (before_x, after_x), (0, 0)), mode="reflect")
    piece = net(crop)
    _check_shape(piece, crop.shape[0] * scale, crop.shape[1] * scale)
    return piece[before_y * scale:piece.shape[0] - after_y * scale,
                 before_x * scale:piece.shape[1] - after_x * scale]


def _check_shape(piece: np.ndarray, height: int, width: int) -> None:
    if piece.shape[:2] != (height, width):
        raise ValueError(f"net returned {piece.shape[1]}x{piece.shape[0]} for a tile that "
                         f"should become {width}x{height}")


def _blend_into(target: np.ndarray, piece: np.ndarray, left: int, top: int) -> None:
    """Write `piece` (float [0, 1]) into `target` (uint8 or uint16), fading in over the `left`
    columns and `top` rows that earlier tiles already wrote; the rest is copied as is."""
    height, width = piece.shape[:2]
    peak = _top(target.dtype)
    wx = ramp(width, left) if left else np.ones(width, np.float32)
    wy = ramp(height, top) if top else np.ones(height, np.float32)
    target[top:, left:] = _to_int(piece[top:, left:], target.dtype)
    for rows, cols in ((slice(0, top), slice(None)), (slice(top, None), slice(0, left))):
        weight = (wy[rows, None] * wx[None, cols])[..., None]
        blended = target[rows, cols].astype(np.float32) / peak * (1.0 - weight) \
            + piece[rows, cols] * weight
        target[rows, cols] = _to_int(blended, target.dtype)


def _top(dtype) -> float:
    return float(np.iinfo(dtype).max)


def _to_int(values: np.ndarray, dtype) -> np.ndarray:
    peak = _top(dtype)
    return np.clip(values * peak + 0.5, 0, peak).astype(dtype)
