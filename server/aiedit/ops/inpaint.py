"""Inpaint: fill the masked part of the image; pixels outside the mask stay bit-identical."""

from __future__ import annotations

from marshmallow import Schema, validate

from aiedit.ops import control as control_layers
from aiedit.ops import loras as lora_layers
from aiedit.ops.base import (
    DEEP,
    OPTIONAL,
    REQUIRED,
    ImageOutput,
    Integer,
    OpContext,
    OperationError,
    count_field,
    guidance_field,
    negative_prompt_field,
    operation,
    prompt_field,
    seed_field,
    steps_field,
    strength_field,
)
from aiedit.ops.control import control_field


class InpaintParams(Schema):
    prompt = prompt_field()
    negative_prompt = negative_prompt_field()
    strength = strength_field(
        "How much the masked area (the whole image without a mask) may change: 0 keeps it, "
        "1 replaces it; classic models blend their fill by it"
    )
    steps = steps_field()
    guidance = guidance_field()
    seed = seed_field()
    count = count_field()
    control = control_field()
    loras = lora_layers.loras_field()
    context_margin = Integer(
        load_default=32,
        validate=validate.Range(0, 1024),
        metadata={"description": "Pixels of context around the mask the model sees"},
    )
    feather = Integer(
        load_default=8,
        validate=validate.Range(0, 256),
        metadata={"description": "Soften the mask's edge by this many pixels"},
    )
    radius = Integer(
        load_default=5,
        validate=validate.Range(1, 64),
        metadata={"description": "Neighbourhood radius (classic models)"},
    )


def check(params: dict, sizes: dict, config, entry, catalog) -> None:
    if entry.is_classic and (params["control"] or params["loras"]):
        raise OperationError(
            "control_unsupported",
            f"control, loras: model {entry.id} is a classic inpainter; control layers and "
            "LoRAs take a diffusion model",
        )
    if entry.is_classic and "mask" not in sizes:
        raise OperationError(
            "mask_required",
            f"mask: model {entry.id} fills holes and needs a mask; refining a whole image "
            "takes a diffusion model",
        )
    if entry.is_classic and params["count"] > 1:
        raise OperationError(
            "count_unsupported",
            f"count: model {entry.id} has no randomness, so it makes one result; variations "
            "take a diffusion model",
        )
    if catalog is not None:
        control_layers.check(params, sizes, entry, catalog)
        lora_layers.check(params, entry, catalog)


@operation(
    "inpaint",
    version=2,
    title="Inpaint selection",
    params=InpaintParams,
    inputs={"image": REQUIRED, "mask": OPTIONAL, "reference": OPTIONAL, "control": OPTIONAL},
    validate=check,
    input_formats=DEEP,
)
def run(ctx: OpContext):
    """Fill the selected area so it blends with its surroundings (or follows the prompt).
    Without a mask the whole image is refined by `strength` (diffusion models only).
    A 16-bit image stays 16-bit: classic fills work at 16 bits; a diffusion model sees 8 bits
    and its fill is blended in only where the mask is, so every other pixel keeps its value."""
    import numpy as np

    from aiedit.imaging import masks
    from aiedit.imaging.codec import to_8bit

    image = np.asarray(ctx.inputs["image"])
    mask = ctx.inputs.get("mask")
    if mask is None:  # refine the whole image (check() refused this for classic models)
        mask = np.full(image.shape[:2], 255, np.uint8)
    mask = np.asarray(mask)
    box = masks.bounds(mask)
    if box is None:
        raise OperationError("mask_empty", "mask: nothing is selected (the mask is all zero)")
    p = ctx.params
    check(p, {"mask": mask.shape}, None, ctx.model.entry, None)
    if p["strength"] == 0.0:  # keep: nothing may change
        return [ImageOutput(image.copy(), seed=None) for _ in range(p["count"])]
    height, width = mask.shape
    x0, y0, x1, y1 = masks.grow(box, p["context_margin"], width, height)
    crop, crop_mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    if ctx.model.engine == "classic":
        fills = [(_classic(crop, crop_mask, ctx), None)]
        blend = masks.feather(crop_mask, p["feather"])
        blend = np.rint(blend.astype(np.float32) * p["strength"]).astype(np.uint8)
    elif ctx.model.engine == "diffusion":
        with lora_layers.active(ctx):
            fills = _diffusion(to_8bit(crop), crop_mask, ctx, (x0, y0, x1, y1))
        blend = masks.feather(crop_mask, p["feather"])
    else:
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot inpaint with this server version",
        )
    outputs = []
    for filled, seed in fills:
        out = image.copy()
        out[y0:y1, x0:x1] = masks.composite(crop, filled, blend)
        outputs.append(ImageOutput(out, seed=seed))
    return outputs


def _classic(crop, crop_mask, ctx):
    import cv2
    import numpy as np

    ctx.progress(0, 1, "inpainting")
    method = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}[ctx.model.obj.name]
    holes = (crop_mask > 0).astype(np.uint8)
    rgb = fill_holes(crop, holes, ctx.params["radius"], method)
    alpha = np.where(holes > 0, np.iinfo(crop.dtype).max, crop[..., 3]).astype(crop.dtype)
    ctx.progress(1, 1, "inpainting")
    return np.dstack([rgb, alpha])


def fill_holes(rgba, holes, radius: int, method):
    """OpenCV's inpainting of the RGB channels: in one call for 8 bits, channel by channel for
    16 bits (OpenCV inpaints 16-bit images one channel at a time)."""
    import cv2
    import numpy as np

    if rgba.dtype == np.uint8:
        return cv2.inpaint(np.ascontiguousarray(rgba[..., :3]), holes, radius, method)
    return np.dstack([cv2.inpaint(np.ascontiguousarray(rgba[..., c]), holes, radius, method)
                      for c in range(3)])


def _diffusion(crop, crop_mask, ctx, box):
    """Run the model on the crop at its native size (in the multiples it needs), once per
    variation, and bring each result back to the crop's size; the caller pastes it through the
    feathered mask."""
    import numpy as np

    from aiedit.engines.diffusion import to_pil, to_rgba

    p, model = ctx.params, ctx.model.obj
    height, width = crop_mask.shape
    work = model.fit(width, height)
    image, mask = to_pil(crop, work), to_pil(crop_mask, work, mode="L")
    controls = control_layers.prepare(ctx, work, box).kwargs
    alpha = np.maximum(crop[..., 3], np.where(crop_mask > 0, 255, 0)).astype(np.uint8)
    fills = []
    for index in range(p["count"]):
        seed = None if p["seed"] is None else (p["seed"] + index) % 2**32
        result = model(
            ctx.progress,
            seed=seed,
            stage="inpainting" if p["count"] == 1 else f"inpainting {index + 1}/{p['count']}",
            prompt=p["prompt"],
            negative_prompt=p["negative_prompt"],
            steps=p["steps"],
            guidance=p["guidance"],
            strength=p["strength"],
            image=image,
            mask=mask,
            width=work[0],
            height=work[1],
            **controls,
        )
        fills.append((to_rgba(result.images[0], (width, height), alpha=alpha), result.seed))
    return fills
