"""Upscale: enlarge the whole layer by a factor."""

from __future__ import annotations

from marshmallow import validate

from aiedit.ops import tile_refine
from aiedit.ops.base import (
    DEEP,
    REQUIRED,
    Float,
    ImageOutput,
    Integer,
    OpContext,
    OperationError,
    operation,
)

STRIP_ROWS = 256


class UpscaleParams(tile_refine.RefineParams):
    scale = Float(
        load_default=2.0,
        allow_nan=False,
        validate=validate.Range(1.0, 8.0),
        metadata={"description": "Enlargement factor"},
    )
    tile_size = Integer(
        load_default=512,
        validate=validate.Range(32, 4096),
        metadata={"description": "Tile edge for model upscalers, pixels"},
    )
    tile_overlap = Integer(
        load_default=32,
        validate=validate.Range(0, 512),
        metadata={"description": "Overlap between tiles, pixels"},
    )


def output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def check(params: dict, sizes: dict, config, entry, catalog) -> None:
    if params["tile_overlap"] * 2 >= params["tile_size"]:
        raise OperationError("tile_overlap_too_large",
                             f"upscale: tile_overlap ({params['tile_overlap']}) must be less than "
                             f"half of tile_size ({params['tile_size']})")
    out_w, out_h = output_size(*sizes["image"], params["scale"])
    if (
        out_w > config.max_side
        or out_h > config.max_side
        or out_w * out_h > config.max_output_pixels
    ):
        raise OperationError(
            "output_too_large",
            f"upscale: the result would be {out_w}x{out_h} "
            f"({out_w * out_h / 1e6:.0f} MP), over this server's limit of "
            f"{config.max_output_pixels / 1e6:.0f} MP and {config.max_side} a side",
        )
    check_native_size(params, sizes, config, entry)
    tile_refine.check(params, catalog)


ASSUMED_NATIVE_SCALE = 4  # a net whose catalog entry gives no `options.native_scale`


def native_scale(entry) -> int | None:
    """The factor the entry's net enlarges by (its output before resampling to the asked
    scale): the catalog's `options.native_scale`, else 4, the common case; None for classic."""
    if entry is None or entry.is_classic:
        return None
    return int(entry.options.get("native_scale", ASSUMED_NATIVE_SCALE))


def check_native_size(params: dict, sizes: dict, config, entry) -> None:
    """A net that enlarges more than asked makes its whole native-size image first, then
    resamples it down: that image must fit the output limits too."""
    native = native_scale(entry)
    if native is None or native <= params["scale"]:
        return
    width, height = sizes["image"]
    nat_w, nat_h = output_size(width, height, native)
    if nat_w > config.max_side or nat_h > config.max_side or \
            nat_w * nat_h > config.max_output_pixels:
        raise OperationError(
            "output_too_large",
            f"upscale: model {entry.id} enlarges x{native}, so the {width}x{height} layer "
            f"becomes {nat_w}x{nat_h} ({nat_w * nat_h / 1e6:.0f} MP) before it is resized to "
            f"x{params['scale']:g}; that is over this server's limit of "
            f"{config.max_output_pixels / 1e6:.0f} MP and {config.max_side} a side. Pick a "
            f"model of x{params['scale']:g} (or Lanczos), or upscale a smaller layer",
        )


def cost(params: dict, sizes: dict) -> float:
    """Started 4-megapixel blocks of the enlarged output (at least one)."""
    out_w, out_h = output_size(*sizes["image"], params["scale"])
    units = float(max(1, -(-out_w * out_h // 4_000_000)))
    if tile_refine.wanted(params):  # a diffusion image-to-image call per tile
        units += tile_refine.tile_count(params, out_w, out_h)
    return units


@operation(
    "upscale",
    version=1,
    title="Upscale",
    params=UpscaleParams,
    inputs={"image": REQUIRED},
    region="layer",
    validate=check,
    cost=cost,
    input_formats=DEEP,
    extra_models=tile_refine.extra_models,
)
def run(ctx: OpContext):
    """Enlarge the layer; its offset scales with it. A 16-bit layer stays 16-bit. With a
    classic model at scale 1 the result is the layer itself, bit for bit (an identity round
    trip for checking a plug-in's pixel path). With a `refine_model`, a diffusion pass then
    redraws the enlarged image tile by tile at `refine_strength`, seams blended."""
    import numpy as np

    image = np.asarray(ctx.inputs["image"])
    height, width = image.shape[:2]
    scale = ctx.params["scale"]
    if ctx.model.engine == "classic" and output_size(width, height, scale) == (width, height):
        ctx.progress(1, 1, "resampling")
        out = image.copy()
    elif ctx.model.engine == "classic":
        out = _lanczos(image, *output_size(width, height, scale), ctx)
    elif ctx.model.engine == "spandrel":
        out = _model_upscale(image, *output_size(width, height, scale), ctx)
    else:
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot upscale with this server version",
        )
    seed = tile_refine.run(ctx, out)
    dx = round(ctx.region.x * scale) - ctx.region.x
    dy = round(ctx.region.y * scale) - ctx.region.y
    return [ImageOutput(out, dx=dx, dy=dy, seed=seed)]


def _lanczos(image, out_w: int, out_h: int, ctx):
    """Lanczos resampling in horizontal strips (same pixels as one call; progress per strip).
    8-bit images are resampled as they are (the imaging library premultiplies alpha); 16-bit
    ones one channel at a time in float32 (it has no 16-bit RGBA mode), alpha first, colour
    premultiplied by it as the 8-bit path does, rounded back to 16 bits: one float copy of a
    channel (and of alpha) is held at a time."""
    import numpy as np
    from PIL import Image

    out = np.empty((out_h, out_w, *image.shape[2:]), image.dtype)
    strips = list(range(0, out_h, STRIP_ROWS))
    if image.dtype == np.uint8:
        source = Image.fromarray(np.ascontiguousarray(image))
        for i, top in enumerate(strips):
            ctx.progress(i, len(strips), "resampling")
            bottom = min(out_h, top + STRIP_ROWS)
            out[top:bottom] = np.asarray(_resize_strip(source, image, out_w, out_h, top, bottom))
        ctx.progress(len(strips), len(strips), "resampling")
        return out
    planes = image[..., None] if image.ndim == 2 else image
    target = out.reshape(out_h, out_w, -1)
    channels = planes.shape[2]
    weight = None
    if channels == 4 and planes[..., 3].min() < 65535:
        weight = planes[..., 3].astype(np.float32) / np.float32(65535)
    order = [3, 0, 1, 2] if weight is not None else list(range(channels))
    total = len(strips) * channels
    for index, c in enumerate(order):
        plane = planes[..., c].astype(np.float32)
        if weight is not None and c != 3:
            plane *= weight
        source = Image.fromarray(plane, "F")
        del plane
        for i, top in enumerate(strips):
            ctx.progress(index * len(strips) + i, total, "resampling")
            bottom = min(out_h, top + STRIP_ROWS)
            strip = np.asarray(_resize_strip(source, image, out_w, out_h, top, bottom))
            if weight is not None and c != 3:  # un-premultiply by the resampled alpha
                alpha = target[top:bottom, :, 3].astype(np.float32) / np.float32(65535)
                strip = np.divide(strip, alpha, out=np.zeros_like(strip), where=alpha > 0)
            target[top:bottom, :, c] = np.clip(np.rint(strip), 0, 65535)
        del source
    ctx.progress(total, total, "resampling")
    return out


def _resize_strip(source, image, out_w: int, out_h: int, top: int, bottom: int):
    from PIL import Image

    height, width = image.shape[:2]
    box = (0, top * height / out_h, width, bottom * height / out_h)
    return source.resize((out_w, bottom - top), Image.Resampling.LANCZOS, box=box)


def _model_upscale(image, out_w: int, out_h: int, ctx):
    """Run the net over overlapping tiles at its own scale, then resample to the asked size
    if that differs. Alpha is resampled (nets enlarge colour only)."""
    import numpy as np

    net = ctx.model.obj
    if net.purpose == "FaceSR" or net.scale < 2:
        raise OperationError("model_unsuitable",
                             f"model {ctx.model.entry.id} does not enlarge images; pick an "
                             "upscale model")
    height, width = image.shape[:2]
    native_size = (width * net.scale, height * net.scale)
    out = np.empty((out_h, out_w, 4), image.dtype)
    if native_size == (out_w, out_h):
        run_model_tiled(image[..., :3], ctx, out=out[..., :3])
    else:
        native = run_model_tiled(image[..., :3], ctx)
        out[..., :3] = _lanczos(native, out_w, out_h, ctx)
        del native
    _resize_alpha_into(out, image[..., 3])
    return out


def run_model_tiled(rgb, ctx, out=None, stage: str = "upscaling"):
    """The net over tiles (`tile_size`, `tile_overlap` params), progress per tile; out of
    memory even with smaller tiles becomes a clear failure."""
    from aiedit.imaging.tiles import OutOfMemory, run_tiled_retrying

    tile = ctx.params.get("tile_size") or 512
    overlap = ctx.params.get("tile_overlap") or 0
    try:
        return run_tiled_retrying(rgb, ctx.model.obj, tile, overlap,
                                  lambda done, total: ctx.progress(done, total, stage), out=out)
    except OutOfMemory as exc:
        raise OperationError("out_of_memory",
                             f"model {ctx.model.entry.id} ran out of memory on {ctx.device} even "
                             f"with {exc.tile}-pixel tiles; try a smaller tile_size, a lighter "
                             "model or free memory on the device") from None


def _resize_alpha_into(out, alpha) -> None:
    import numpy as np
    from PIL import Image

    if alpha.min() == alpha.max():
        out[..., 3] = alpha.flat[0]
        return
    if alpha.dtype == np.uint8:
        source = Image.fromarray(np.ascontiguousarray(alpha), "L")
        out[..., 3] = np.asarray(source.resize(out.shape[1::-1], Image.Resampling.LANCZOS))
        return
    source = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32), "F")
    plane = np.asarray(source.resize(out.shape[1::-1], Image.Resampling.LANCZOS))
    out[..., 3] = np.clip(np.rint(plane), 0, 65535)
