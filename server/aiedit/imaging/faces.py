"""Faces for face-restoration nets: find them (MTCNN, whose weights ship inside the
facenet-pytorch package), align each to the 512 x 512 FFHQ layout those nets were trained on,
and blend the restored face back with a feathered mask."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FACE_SIZE = 512
# Eye centres, nose tip and mouth corners of an FFHQ-aligned 512 x 512 face.
FFHQ_POINTS = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                        [201.26117, 371.41043], [313.08905, 371.15118]], np.float32)
MIN_SCORE = 0.95
MIN_FACE_PIXELS = 16
_detect_lock = threading.Lock()


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    points: np.ndarray  # 5 x 2: left eye, right eye, nose, mouth left, mouth right
    score: float


@lru_cache(maxsize=1)
def _detector():
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:
        raise RuntimeError("face restoration needs the facenet-pytorch package (its MTCNN face "
                           "detector): pip install 'facenet-pytorch>=2.5.3,<2.6'") from exc
    return MTCNN(keep_all=True, device="cpu", min_face_size=MIN_FACE_PIXELS)


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Faces in an H x W x 3 uint8 image, most confident first."""
    with _detect_lock:
        boxes, scores, points = _detector().detect(np.ascontiguousarray(rgb), landmarks=True)
    if boxes is None:
        return []
    faces = [Face(tuple(float(v) for v in box), np.asarray(pts, np.float32), float(score))
             for box, score, pts in zip(boxes, scores, points, strict=True)
             if score is not None and score >= MIN_SCORE]
    return sorted(faces, key=lambda f: -f.score)


def alignment(face: Face) -> np.ndarray:
    """The 2 x 3 similarity transform from the image to the aligned 512 x 512 face."""
    import cv2

    matrix, _ = cv2.estimateAffinePartial2D(face.points, FFHQ_POINTS, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("face landmarks are degenerate")
    return matrix


def restore_faces(rgb: np.ndarray, restore: Callable[[np.ndarray], np.ndarray], blend: float,
                  on_face: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Restore every detected face of `rgb` (H x W x 3 uint8, or uint16: faces are found on
    its 8-bit version, cropped, restored and pasted at 16 bits) with `restore` (512 x 512 x 3
    float [0, 1] -> same) and blend it back at opacity `blend`. Returns the image and the
    number of faces restored."""
    import cv2

    from aiedit.imaging.codec import to_8bit

    peak = float(np.iinfo(rgb.dtype).max)
    faces = detect_faces(to_8bit(rgb))
    out = rgb.copy()
    for index, face in enumerate(faces):
        if on_face:
            on_face(index, len(faces))
        matrix = alignment(face)
        crop = cv2.warpAffine(rgb, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
        restored = restore(crop.astype(np.float32) / peak)
        paste_face(out, restored, matrix, blend)
    if on_face:
        on_face(len(faces), len(faces))
    return out, len(faces)


def paste_face(out: np.ndarray, face: np.ndarray, matrix: np.ndarray, blend: float) -> None:
    """Warp the aligned `face` (512 x 512 x 3 float [0, 1]) back into `out` (uint8 or uint16,
    in place) through a feathered mask, touching only the face's bounding box."""
    import cv2

    inverse = cv2.invertAffineTransform(matrix)
    height, width = out.shape[:2]
    corners = np.array([[0, 0, 1], [FACE_SIZE, 0, 1], [0, FACE_SIZE, 1],
                        [FACE_SIZE, FACE_SIZE, 1]], np.float32) @ inverse.T
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    inverse[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    peak = float(np.iinfo(out.dtype).max)
    warped = cv2.warpAffine(face * peak, inverse, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(_feather_mask(), inverse, size, flags=cv2.INTER_LINEAR)[..., None]
    mask *= blend
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region * (1 - mask) + warped * mask + 0.5, 0, peak).astype(
        out.dtype)


@lru_cache(maxsize=1)
def _feather_mask() -> np.ndarray:
    """1 inside the aligned face square, fading to 0 over its outer 1/16 on each side."""
    import cv2

    margin = FACE_SIZE // 16
    mask = np.zeros((FACE_SIZE, FACE_SIZE), np.float32)
    mask[margin:-margin, margin:-margin] = 1.0
    kernel = 2 * margin + 1
    return cv2.GaussianBlur(mask, (kernel, kernel), margin / 2)
