"""Generate: a new image from a prompt."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops import control as control_layers
from aiedit.ops import loras as lora_layers
from aiedit.ops.base import (
    OPTIONAL,
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


def _dimension(name: str) -> fields.Integer:
    return Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(64, 2048),
        metadata={
            "description": f"Image {name} in pixels (multiples the model "
            "needs are rounded to); empty for the region's"
        },
    )


class GenerateParams(Schema):
    prompt = prompt_field(required=True)
    negative_prompt = negative_prompt_field()
    width = _dimension("width")
    height = _dimension("height")
    steps = steps_field()
    guidance = guidance_field()
    seed = seed_field()
    strength = strength_field()
    count = count_field()
    control = control_field()
    loras = lora_layers.loras_field()


def cost(params: dict, sizes: dict) -> float:
    """Images x started megapixels of each output image."""
    width, height = params.get("width") or 1024, params.get("height") or 1024
    return float(params["count"] * max(1, -(-width * height // 1_000_000)))


def check(params: dict, sizes: dict, config, entry, catalog) -> None:
    control_layers.check(params, sizes, entry, catalog)
    lora_layers.check(params, entry, catalog)


@operation(
    "generate",
    version=2,
    title="Generate",
    params=GenerateParams,
    inputs={"image": OPTIONAL, "control": OPTIONAL},
    cost=cost,
    validate=check,
)
def run(ctx: OpContext):
    """Draw new images from a prompt, sized to the selection (or the given width and height).
    With an `image` (the pixels under the region, or a whole layer) and a `strength` below 1 it
    refines them: 0 keeps the image, in between the model redraws that much of it; at 1 (the
    default) the image plays no part."""
    if ctx.model.engine != "diffusion":
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot generate with this server version",
        )
    image = ctx.inputs.get("image")
    if ctx.params["strength"] >= 1.0:
        image = None  # replace: the pixels under the region play no part
    if image is not None and (ctx.params["width"] or ctx.params["height"]):
        raise OperationError(
            "params_conflict",
            "width/height: a refine (strength below 1) keeps the image's size; leave them empty",
        )
    with lora_layers.active(ctx):
        return _diffusion(ctx, image)


def _diffusion(ctx: OpContext, image):
    import numpy as np

    from aiedit.engines.diffusion import to_pil, to_rgba
    from aiedit.ops.base import ImageOutput

    p, model = ctx.params, ctx.model.obj
    if image is not None:
        size = (image.shape[1], image.shape[0])
        alpha = np.asarray(image)[..., 3]
    else:
        size = (p["width"] or ctx.region.width, p["height"] or ctx.region.height)
        alpha = None
    refine = image is not None
    if refine and p["strength"] == 0.0:  # keep: nothing to redraw
        return [ImageOutput(np.array(image), seed=None) for _ in range(p["count"])]
    work_w, work_h = model.fit(*size)
    extra = dict(control_layers.prepare(ctx, (work_w, work_h)).kwargs)
    if refine:
        extra |= {
            "task": "image2image",
            "image": to_pil(np.asarray(image), (work_w, work_h)),
            "strength": p["strength"],
        }
    outputs = []
    for index in range(p["count"]):
        seed = None if p["seed"] is None else (p["seed"] + index) % 2**32
        verb = "refining" if refine else "denoising"
        stage = verb if p["count"] == 1 else f"{verb} {index + 1}/{p['count']}"
        result = model(
            ctx.progress,
            seed=seed,
            stage=stage,
            prompt=p["prompt"],
            negative_prompt=p["negative_prompt"],
            steps=p["steps"],
            guidance=p["guidance"],
            width=work_w,
            height=work_h,
            **extra,
        )
        outputs.append(ImageOutput(to_rgba(result.images[0], size, alpha=alpha), seed=result.seed))
    return outputs
