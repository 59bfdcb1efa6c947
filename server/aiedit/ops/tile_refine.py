"""A diffusion refine pass over a big image, tile by tile (upscale's `refine_model`): each
overlapping tile is redrawn by the model's image-to-image pipeline at `refine_strength`, with the
same seed, and the seams are blended as the super-resolution nets' are (`imaging.tiles`), so
the pass adds detail a net cannot invent without visible tile edges."""

from __future__ import annotations

import math

from marshmallow import Schema, fields, validate

from aiedit.ops.base import Float, Integer, OpContext, OperationError

DEFAULT_STRENGTH = 0.3


class RefineParams(Schema):
    """The params an operation takes to offer the pass (off by default); its params schema
    derives from this one."""

    refine_model = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, 200),
        metadata={"description": "A diffusion model id from /v1/models (one that can "
                                 "generate) to redraw the enlarged image with, tile by "
                                 "tile; empty for no refine pass"},
    )
    refine_strength = Float(
        load_default=DEFAULT_STRENGTH,
        validate=validate.Range(0.0, 1.0),
        metadata={"description": "How much the refine pass may change (0 keeps the "
                                 "enlarged pixels, 1 redraws them)"},
    )
    refine_prompt = fields.String(
        load_default="",
        validate=validate.Length(max=4000),
        metadata={"description": "What the image shows, to guide the refine pass"},
    )
    refine_steps = Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(1, 150),
        metadata={"description": "Denoising steps of the refine pass; empty for the "
                                 "model's default"},
    )
    refine_tile = Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(64, 4096),
        metadata={"description": "Refine tile edge in pixels; empty for the model's "
                                 "native size"},
    )
    seed = Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 2**32 - 1),
        metadata={"description": "Random seed of the refine pass; empty for a new one"},
    )


def wanted(params: dict) -> bool:
    return bool(params.get("refine_model")) and params.get("refine_strength", 0) > 0


def check(params: dict, catalog) -> None:
    """The refine model exists and can redraw (a diffusion model serving generate)."""
    model_id = params.get("refine_model")
    if not model_id:
        return
    entry = catalog.get(model_id)
    if entry is None or entry.engine != "diffusion" or not entry.serves("generate"):
        raise OperationError(
            "unknown_model",
            f"refine_model: {model_id!r} is no diffusion model that generates; GET /v1/models "
            "lists them (operation generate)",
        )


def extra_models(params: dict) -> list[str]:
    return [params["refine_model"]] if wanted(params) else []


def tile_side(params: dict, native_area: int, multiple: int) -> int:
    side = params.get("refine_tile") or int(math.sqrt(native_area))
    return max(multiple, side // multiple * multiple)


def tile_count(params: dict, width: int, height: int, native_side: int = 1024) -> int:
    """Tiles the pass will run (for the job's cost), before the model is loaded."""
    from aiedit.imaging.tiles import tile_count as count

    side = params.get("refine_tile") or native_side
    return count(width, height, side, side // 8)


def run(ctx: OpContext, out, stage: str = "refining") -> int | None:
    """Redraw the RGB of `out` (H x W x 4 uint8, changed in place) tile by tile; returns the
    seed used (None when the pass is off)."""
    import random

    import numpy as np

    from aiedit.engines.diffusion import to_pil
    from aiedit.imaging.tiles import run_tiled, spans

    p = ctx.params
    if not wanted(p):
        return None
    loaded = ctx.load(p["refine_model"])
    if loaded.engine != "diffusion":
        raise OperationError("unknown_model", f"refine_model: {p['refine_model']} cannot redraw")
    model, defaults = loaded.obj, loaded.entry.defaults
    seed = random.randrange(2**32) if p.get("seed") is None else int(p["seed"])
    side = tile_side(p, model.native_area, model.multiple)
    overlap = side // 8
    height, width = out.shape[:2]
    total = len(spans(width, side, overlap)) * len(spans(height, side, overlap))
    done = [0]

    def redraw(tile):  # H x W x 3 float [0, 1] -> the same, redrawn
        h, w = tile.shape[:2]
        step = model.multiple  # pad up to the multiples the model needs (no resampling)
        work_w, work_h = max(step, -(-w // step) * step), max(step, -(-h // step) * step)
        pixels = np.clip(tile * 255.0 + 0.5, 0, 255).astype(np.uint8)
        pixels = np.pad(pixels, ((0, work_h - h), (0, work_w - w), (0, 0)), mode="edge")
        done[0] += 1
        result = model(
            ctx.progress,
            seed=seed,
            stage=f"{stage} tile {done[0]}/{total}",
            task="image2image",
            image=to_pil(pixels),
            strength=p["refine_strength"],
            prompt=p["refine_prompt"],
            steps=p["refine_steps"] or defaults.get("steps"),
            guidance=defaults.get("guidance"),
        )
        drawn = result.images[0].convert("RGB")
        if drawn.size != (work_w, work_h):
            drawn = drawn.resize((work_w, work_h))
        return np.asarray(drawn, np.float32)[:h, :w] / 255.0

    source = np.array(out[..., :3], copy=True)  # tiles read the unrefined pixels
    run_tiled(source, redraw, 1, side, overlap, out=out[..., :3])
    return seed
