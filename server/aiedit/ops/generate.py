"""Generate: a new image from a prompt."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops.base import (
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
    count = Integer(
        load_default=1, validate=validate.Range(1, 4), metadata={"description": "How many images"}
    )


def cost(params: dict, sizes: dict) -> float:
    width, height = params.get("width") or 1024, params.get("height") or 1024
    return float(params["count"] * max(1, -(-width * height // 1_000_000)))


@operation("generate", version=1, title="Generate", params=GenerateParams, inputs={}, cost=cost)
def run(ctx: OpContext):
    """Draw new images from a prompt, sized to the selection (or the given width and height)."""
    if ctx.model.engine != "diffusion":
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot generate with this server version",
        )
    return _diffusion(ctx)


def _diffusion(ctx: OpContext):
    from aiedit.engines.diffusion import to_rgba
    from aiedit.ops.base import ImageOutput

    p, model = ctx.params, ctx.model.obj
    size = (p["width"] or ctx.region.width, p["height"] or ctx.region.height)
    work_w, work_h = model.fit(*size)
    outputs = []
    for index in range(p["count"]):
        seed = None if p["seed"] is None else (p["seed"] + index) % 2**32
        stage = "denoising" if p["count"] == 1 else f"denoising {index + 1}/{p['count']}"
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
        )
        outputs.append(ImageOutput(to_rgba(result.images[0], size), seed=result.seed))
    return outputs
