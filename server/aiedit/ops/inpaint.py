"""Inpaint: fill the masked part of the image; pixels outside the mask stay bit-identical."""

from __future__ import annotations

from marshmallow import Schema, validate

from aiedit.ops.base import (
    OPTIONAL,
    REQUIRED,
    Float,
    ImageOutput,
    Integer,
    OpContext,
    OperationError,
    guidance_field,
    negative_prompt_field,
    operation,
    prompt_field,
    seed_field,
    steps_field,
)


class InpaintParams(Schema):
    prompt = prompt_field()
    negative_prompt = negative_prompt_field()
    strength = Float(
        load_default=1.0,
        allow_nan=False,
        validate=validate.Range(0.0, 1.0),
        metadata={"description": "How much the masked area may change"},
    )
    steps = steps_field()
    guidance = guidance_field()
    seed = seed_field()
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


@operation(
    "inpaint",
    version=1,
    title="Inpaint selection",
    params=InpaintParams,
    inputs={"image": REQUIRED, "mask": REQUIRED, "reference": OPTIONAL},
)
def run(ctx: OpContext):
    """Fill the selected area so it blends with its surroundings (or follows the prompt)."""
    import numpy as np

    from aiedit.imaging import masks

    image = np.asarray(ctx.inputs["image"])
    mask = np.asarray(ctx.inputs["mask"])
    box = masks.bounds(mask)
    if box is None:
        raise OperationError("mask_empty", "mask: nothing is selected (the mask is all zero)")
    height, width = mask.shape
    x0, y0, x1, y1 = masks.grow(box, ctx.params["context_margin"], width, height)
    crop, crop_mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    ctx.progress(0, 1, "inpainting")
    if ctx.model.engine == "classic":
        filled, seed = _classic(crop, crop_mask, ctx), None
    elif ctx.model.engine == "diffusion":
        filled, seed = _diffusion(crop, crop_mask, ctx)
    else:
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot inpaint with this server version",
        )
    ctx.progress(1, 1, "inpainting")
    blend = masks.feather(crop_mask, ctx.params["feather"])
    out = image.copy()
    out[y0:y1, x0:x1] = masks.composite(crop, filled, blend)
    return [ImageOutput(out, seed=seed)]


def _classic(crop, crop_mask, ctx):
    import cv2
    import numpy as np

    method = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}[ctx.model.obj.name]
    holes = (crop_mask > 0).astype(np.uint8)
    rgb = cv2.inpaint(np.ascontiguousarray(crop[..., :3]), holes, ctx.params["radius"], method)
    alpha = np.maximum(crop[..., 3], holes * 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def _diffusion(crop, crop_mask, ctx):
    """Run the model on the crop at its native size (in the multiples it needs) and bring the
    result back to the crop's size; the caller pastes it through the feathered mask."""
    import numpy as np

    from aiedit.engines.diffusion import to_pil, to_rgba

    p, model = ctx.params, ctx.model.obj
    height, width = crop_mask.shape
    work = model.fit(width, height)
    result = model(
        ctx.progress,
        seed=p["seed"],
        stage="inpainting",
        prompt=p["prompt"],
        negative_prompt=p["negative_prompt"],
        steps=p["steps"],
        guidance=p["guidance"],
        strength=p["strength"],
        image=to_pil(crop, work),
        mask=to_pil(crop_mask, work, mode="L"),
        width=work[0],
        height=work[1],
    )
    alpha = np.maximum(crop[..., 3], np.where(crop_mask > 0, 255, 0)).astype(np.uint8)
    return to_rgba(result.images[0], (width, height), alpha=alpha), result.seed
