"""Outpaint: extend the canvas on any side and fill the new area."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops.base import (
    DEEP,
    REQUIRED,
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

SIDES = ("left", "top", "right", "bottom")


def _side(name: str) -> fields.Integer:
    return Integer(
        load_default=0,
        validate=validate.Range(0, 4096),
        metadata={"description": f"Pixels to add on the {name}"},
    )


class OutpaintParams(Schema):
    left = _side("left")
    top = _side("top")
    right = _side("right")
    bottom = _side("bottom")
    prompt = prompt_field()
    negative_prompt = negative_prompt_field()
    steps = steps_field()
    guidance = guidance_field()
    seed = seed_field()
    feather = Integer(
        load_default=16,
        validate=validate.Range(0, 256),
        metadata={"description": "Blend width into the original, pixels"},
    )
    radius = Integer(
        load_default=5,
        validate=validate.Range(1, 64),
        metadata={"description": "Neighbourhood radius (classic models)"},
    )


def check(params: dict, sizes: dict, config, entry, catalog) -> None:
    if not any(params[s] for s in SIDES):
        raise OperationError(
            "nothing_to_do", "outpaint: set at least one of left, top, right, bottom above 0"
        )
    width, height = sizes["image"]
    out_w = width + params["left"] + params["right"]
    out_h = height + params["top"] + params["bottom"]
    if (
        out_w > config.max_side
        or out_h > config.max_side
        or out_w * out_h > config.max_output_pixels
    ):
        raise OperationError(
            "output_too_large",
            f"outpaint: the result would be {out_w}x{out_h}, over this server's output limit",
        )


@operation(
    "outpaint",
    version=1,
    title="Outpaint",
    params=OutpaintParams,
    inputs={"image": REQUIRED},
    region="layer",
    validate=check,
    input_formats=DEEP,
)
def run(ctx: OpContext):
    """Extend the image beyond its edges; the result's offset moves by what was added. A 16-bit
    image stays 16-bit, its own pixels unchanged; classic fills are 16-bit, a diffusion model's
    fill is 8-bit widened."""
    import numpy as np

    image = np.asarray(ctx.inputs["image"])
    p = ctx.params
    height, width = image.shape[:2]
    canvas = np.zeros(
        (height + p["top"] + p["bottom"], width + p["left"] + p["right"], 4), image.dtype
    )
    canvas[p["top"] : p["top"] + height, p["left"] : p["left"] + width] = image
    hole = np.full(canvas.shape[:2], 255, np.uint8)
    hole[p["top"] : p["top"] + height, p["left"] : p["left"] + width] = 0
    ctx.progress(0, 1, "outpainting")
    if ctx.model.engine == "classic":
        filled, seed = _classic(canvas, hole, ctx), None
    elif ctx.model.engine == "diffusion":
        filled, seed = _diffusion(canvas, hole, ctx)
    else:
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot outpaint with this server version",
        )
    ctx.progress(1, 1, "outpainting")
    return [ImageOutput(filled, dx=-p["left"], dy=-p["top"], seed=seed)]


def _classic(canvas, hole, ctx):
    import cv2
    import numpy as np

    from aiedit.ops.inpaint import fill_holes

    method = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}[ctx.model.obj.name]
    rgb = fill_holes(canvas, (hole > 0).astype(np.uint8), ctx.params["radius"], method)
    alpha = np.where(hole > 0, np.iinfo(canvas.dtype).max, canvas[..., 3]).astype(canvas.dtype)
    return np.dstack([rgb, alpha])


def _diffusion(canvas, hole, ctx):
    """Fill the new border with the model (seeing the whole canvas, its new parts seeded with
    the nearest edge pixels) and blend it `feather` pixels into the original."""
    import cv2
    import numpy as np

    from aiedit.engines.diffusion import to_pil, to_rgba
    from aiedit.imaging import masks
    from aiedit.imaging.codec import to_8bit

    p, model = ctx.params, ctx.model.obj
    height, width = hole.shape
    seeded = _extend_edges(to_8bit(canvas), p)  # the model sees 8 bits
    work = model.fit(width, height)
    result = model(
        ctx.progress,
        seed=p["seed"],
        stage="outpainting",
        prompt=p["prompt"],
        negative_prompt=p["negative_prompt"],
        steps=p["steps"],
        guidance=p["guidance"],
        strength=1.0,
        image=to_pil(seeded, work),
        mask=to_pil(hole, work, mode="L"),
        width=work[0],
        height=work[1],
    )
    filled = to_rgba(result.images[0], (width, height))
    blend = hole
    if p["feather"] > 0:
        distance = cv2.distanceTransform((hole == 0).astype(np.uint8), cv2.DIST_L2, 5)
        ramp = np.clip(1.0 - distance / float(p["feather"]), 0.0, 1.0) * 255.0
        blend = np.maximum(hole, ramp.round().astype(np.uint8))
    return masks.composite(canvas, filled, blend), result.seed


def _extend_edges(canvas, p):
    import cv2

    height, width = canvas.shape[:2]
    inner = canvas[p["top"] : height - p["bottom"], p["left"] : width - p["right"]]
    return cv2.copyMakeBorder(
        inner, p["top"], p["bottom"], p["left"], p["right"], cv2.BORDER_REPLICATE
    )
