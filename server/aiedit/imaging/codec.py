"""Decode uploads into sRGB RGBA arrays (8-bit, or 16-bit where the operation takes deep
colour) or 8-bit masks, refusing what cannot be decoded safely; encode results.

Pixel formats (the contract's names): `rgba8` (uint8 RGBA), `rgba16` (uint16 RGBA; raw uploads
and downloads are little-endian), `gray8` (uint8 masks). 16-bit files are PNGs; 8 <-> 16 bits
is x * 257 one way and round(x / 257) the other, so 8 -> 16 -> 8 is exact."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
_SRGB = ImageCms.createProfile("sRGB")

RGBA8, RGBA16, GRAY8 = "rgba8", "rgba16", "gray8"
# raw upload formats: (channels, numpy dtype of one sample)
RAW_FORMATS = {RGBA8: (4, np.dtype(np.uint8)), RGBA16: (4, np.dtype("<u2")),
               GRAY8: (1, np.dtype(np.uint8))}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageInputError(ValueError):
    """An upload that cannot be used; `status` is the HTTP status it deserves."""

    def __init__(self, field: str, code: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code
        self.message = f"{field}: {message}"
        self.status = status


def check_size(field: str, width: int, height: int, max_pixels: int, max_side: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageInputError(
            field, "image_empty", f"the image is {width}x{height}: it has no pixels"
        )
    if width > max_side or height > max_side or width * height > max_pixels:
        raise ImageInputError(
            field,
            "image_too_large",
            f"the image is {width}x{height} ({width * height / 1e6:.1f} MP); this server accepts "
            f"at most {max_side} pixels a side and {max_pixels / 1e6:.1f} MP",
            status=413,
        )


def _open(field: str, data: bytes, max_pixels: int, max_side: int,
          load: bool = True) -> Image.Image:
    if not data:
        raise ImageInputError(field, "image_undecodable", "the file is empty")
    try:
        with warnings.catch_warnings():
            # Only the header is read here; check_size below applies this server's limits
            # before any pixel is decoded. Pillow's own error remains for absurd sizes.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise ImageInputError(
            field,
            "image_too_large",
            f"the image's header declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP; "
            f"this server accepts at most {max_side} pixels a side and {max_pixels / 1e6:.1f} MP",
            status=413,
        ) from None
    except UnidentifiedImageError:
        raise ImageInputError(
            field,
            "image_undecodable",
            "cannot decode the file as an image: it is not a PNG, JPEG, WebP, TIFF, BMP or GIF "
            "file with a usable header",
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        log.info("%s: undecodable upload (%s)", field, exc)  # the library's words stay here
        raise ImageInputError(
            field,
            "image_undecodable",
            "cannot decode the file as an image (PNG, JPEG, WebP, TIFF, BMP or GIF): its header "
            "is damaged or uses a variant this server cannot read",
        ) from None
    check_size(field, img.width, img.height, max_pixels, max_side)
    if not load:
        return img
    try:
        img.load()
    except Exception as exc:  # truncated or corrupt data surfaces only on load, in many types
        log.info("%s: corrupt upload (%s)", field, exc)
        raise ImageInputError(
            field, "image_undecodable", "the image data is truncated or corrupt: save or export "
            "the image again and retry"
        ) from None
    return img


def _to_rgba(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = Image.fromarray(_gray_to_8bit(np.asarray(img)), "L")
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "RGBA", "CMYK", "L", "LA"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            has_alpha = img.mode in ("RGBA", "LA")
            alpha = img.getchannel("A") if has_alpha else None
            base = img.convert("RGB") if img.mode == "LA" else img
            base = base.convert("RGB") if base.mode == "RGBA" else base
            converted = ImageCms.profileToProfile(base, src, _SRGB, outputMode="RGB")
            if converted is not None:
                img = converted
                if alpha is not None:
                    img.putalpha(alpha)
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: fall back to plain conversion
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA")
    return img.convert("RGBA") if img.mode != "RGBA" else img


def _gray_to_8bit(arr: np.ndarray, rows: int = 256) -> np.ndarray:
    """16-bit, 32-bit integer or float gray → 8 bits, a band of rows at a time and without
    float64: integers by integer rounding (x + 128) // 257 (a peak of 255 or less is kept as
    it is), floats in float32 (a peak of 1.0 or less is taken as 0..1)."""
    peak = arr.max(initial=0)
    out = np.empty(arr.shape, np.uint8)
    for top in range(0, arr.shape[0], rows):
        band = arr[top : top + rows]
        if arr.dtype.kind == "f":
            scale = 255.0 if peak <= 1.0 else (1.0 / 257.0 if peak > 255 else 1.0)
            scaled = band.astype(np.float32) * np.float32(scale)
            np.rint(scaled, out=scaled)
            out[top : top + rows] = np.clip(scaled, 0, 255, out=scaled)
        elif peak <= 255:
            out[top : top + rows] = np.clip(band, 0, 255)
        else:
            wide = np.clip(band, 0, 65535).astype(np.uint32)
            wide += 128
            wide //= 257
            out[top : top + rows] = wide
    return out


def decode_image(
    field: str, data: bytes, max_pixels: int, max_side: int, deep: bool = False
) -> np.ndarray:
    """Any supported file → H x W x 4 uint8 sRGB RGBA. With `deep` (the operation takes
    rgba16), a 16-bit PNG → H x W x 4 uint16 sRGB RGBA instead."""
    if png_bit_depth(data) == 16 and (deep or _plain_colour_png16(data)):
        pixels = _decode_png16(field, data, max_pixels, max_side)
        return pixels if deep else to_8bit(pixels)  # rounded (the library would truncate)
    img = _open(field, data, max_pixels, max_side)
    try:
        rgba = _to_rgba(img)
    except (OSError, ValueError) as exc:
        log.info("%s: unconvertible upload (%s)", field, exc)
        raise ImageInputError(
            field, "image_undecodable", "cannot convert the image to RGBA: its mode or colour "
            "profile is not supported; export it as 8- or 16-bit RGB(A) and retry"
        ) from None
    return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8))


def decode_mask(field: str, data: bytes, max_pixels: int, max_side: int) -> np.ndarray:
    """A mask file → H x W uint8 (255 = change here). With a meaningful alpha channel over a
    flat colour, the alpha is the mask; otherwise the luminance."""
    img = _open(field, data, max_pixels, max_side)
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return decode_image(field, data, max_pixels, max_side)[..., 0].copy()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"))
        color = rgba[..., :3]
        if (color == color.reshape(-1, 3)[0]).all() and (rgba[..., 3] < 255).any():
            return np.ascontiguousarray(rgba[..., 3])
    return np.ascontiguousarray(np.asarray(img.convert("L"), dtype=np.uint8))


def png_bit_depth(data) -> int | None:
    """The bit depth a PNG's header declares (1 to 16), or None for anything else."""
    head = bytes(data[:26])
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24]


def _decode_png16(field: str, data, max_pixels: int, max_side: int) -> np.ndarray:
    """A 16-bit PNG (gray, gray+alpha, RGB, RGBA) → H x W x 4 uint16 RGBA. The header and
    size are checked first; the pixels are decoded at full depth (the imaging library used
    for 8-bit files would drop the low byte)."""
    import cv2

    img = _open(field, data, max_pixels, max_side, load=False)
    icc = img.info.get("icc_profile")
    if icc and not _is_srgb(icc):
        raise ImageInputError(
            field, "profile_not_srgb",
            "the 16-bit PNG carries a colour profile other than sRGB; 16-bit uploads must be "
            "sRGB: convert the pixels to sRGB in the editor (or send an 8-bit file, which the "
            "server converts)", status=422,
        )
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.shape[:2] != (img.height, img.width):
        log.info("%s: undecodable 16-bit PNG", field)
        raise ImageInputError(
            field, "image_undecodable", "the 16-bit PNG's data is truncated or corrupt: save "
            "or export the image again and retry"
        )
    out = np.empty((img.height, img.width, 4), np.uint16)
    if arr.ndim == 2:
        out[..., :3] = arr[..., None]
        out[..., 3] = 65535
    elif arr.shape[2] == 3:
        out[..., :3] = arr[..., ::-1]
        out[..., 3] = 65535
    else:
        out[..., :3] = arr[..., 2::-1]
        out[..., 3] = arr[..., 3]
    return out


def _plain_colour_png16(data) -> bool:
    """A 16-bit RGB or RGBA PNG without an embedded profile (chunks before the pixels): its
    8-bit pixels are its 16-bit ones rounded. 16-bit gray is already rounded; a file with a
    profile goes through the colour conversion of the 8-bit path."""
    head = bytes(data[:26])
    if head[25] not in (2, 6):
        return False
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(bytes(data[pos : pos + 4]), "big")
        kind = bytes(data[pos + 4 : pos + 8])
        if kind == b"iCCP":
            return False
        if kind in (b"IDAT", b"IEND"):
            return True
        pos += 12 + length
    return True


def _is_srgb(icc: bytes) -> bool:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile) or ""
    except (ImageCms.PyCMSError, OSError, ValueError):
        return False
    return "srgb" in description.lower()


def decode_raw(
    field: str, data, width: int, height: int, fmt: str, max_pixels: int, max_side: int
) -> np.ndarray:
    """Raw pixels of a declared size and format (rgba8, rgba16 little-endian, gray8) → array
    (a view of `data`, not a copy)."""
    check_size(field, width, height, max_pixels, max_side)
    channels, dtype = RAW_FORMATS[fmt]
    expected = width * height * channels * dtype.itemsize
    if len(data) != expected:
        raise ImageInputError(
            field,
            "raw_size_mismatch",
            f"raw {fmt} data is {len(data)} bytes, but {width}x{height} at "
            f"{channels * dtype.itemsize} bytes per pixel needs {expected}"
            + (" (was 8-bit data sent as rgba16?)" if fmt == RGBA16 and len(data) * 2 == expected
               else " (was 16-bit data sent as rgba8?)" if fmt == RGBA8
               and len(data) == expected * 2 else ""),
        )
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(height, width, channels) if channels > 1 else arr.reshape(height, width)


def to_8bit(pixels: np.ndarray, rows: int = 512) -> np.ndarray:
    """uint16 → uint8 by round(x / 257) (uint8 is returned as it is), a band of rows at a time."""
    if pixels.dtype == np.uint8:
        return pixels
    out = np.empty(pixels.shape, np.uint8)
    for top in range(0, pixels.shape[0], rows):
        wide = pixels[top : top + rows].astype(np.uint32)
        wide += 128
        wide //= 257
        out[top : top + rows] = wide
    return out


def to_16bit(pixels: np.ndarray) -> np.ndarray:
    """uint8 → uint16 by x * 257 (0 → 0, 255 → 65535); uint16 is returned as it is."""
    if pixels.dtype == np.uint16:
        return pixels
    out = pixels.astype(np.uint16)
    out *= 257
    return out


def depth_of(pixels: np.ndarray) -> int:
    return 16 if pixels.dtype == np.uint16 else 8


def encode(pixels: np.ndarray, fmt: str = "png") -> bytes:
    """Encode an H x W x 4 RGBA array as png, jpeg or webp. A uint16 array becomes a 16-bit
    PNG (jpeg and webp hold 8 bits: it is reduced to 8 for them)."""
    if pixels.dtype == np.uint16:
        if fmt == "png":
            return _encode_png16(pixels)
        pixels = to_8bit(pixels)
    img = Image.fromarray(pixels, "RGBA")
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    elif fmt == "jpeg":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        background.save(buf, "JPEG", quality=92)
    elif fmt == "webp":
        img.save(buf, "WEBP", lossless=True, method=1)
    else:
        raise ValueError(f"unknown format {fmt}")
    return buf.getvalue()


def _encode_png16(pixels: np.ndarray) -> bytes:
    import cv2

    bgra = np.ascontiguousarray(pixels[..., [2, 1, 0, 3]])
    ok, buf = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("could not encode a 16-bit PNG")
    return buf.tobytes()
