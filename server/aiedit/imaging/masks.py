"""Masks: bounds, context boxes, feathering and compositing through a soft mask."""

from __future__ import annotations

import numpy as np


def bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the non-zero pixels, x1/y1 exclusive; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def grow(box: tuple[int, int, int, int], margin: int, width: int, height: int):
    x0, y0, x1, y1 = box
    return (
        max(0, x0 - margin),
        max(0, y0 - margin),
        min(width, x1 + margin),
        min(height, y1 + margin),
    )


def feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """Soften the mask's edge inward by `radius` pixels: pixels outside stay exactly 0."""
    if radius <= 0:
        return mask
    import cv2

    inside = (mask > 0).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    ramp = np.clip(distance / float(radius), 0.0, 1.0)
    return np.minimum(mask.astype(np.float32), ramp * 255.0).round().astype(np.uint8)


def composite(original: np.ndarray, changed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend `changed` over `original` by `mask` (0 keeps the original bit for bit), at the
    original's depth: a 16-bit original takes an 8-bit `changed` (a model's output) widened
    to 16 bits, so only the masked part loses depth."""
    if original.dtype == np.uint16 and changed.dtype == np.uint8:
        changed = changed.astype(np.uint16) * np.uint16(257)
    top = float(np.iinfo(original.dtype).max)
    weight = mask.astype(np.float32)[..., None] / 255.0
    blended = original.astype(np.float32) * (1.0 - weight) + changed.astype(np.float32) * weight
    out = np.clip(np.rint(blended), 0, top).astype(original.dtype)
    keep = mask == 0
    out[keep] = original[keep]
    return out
