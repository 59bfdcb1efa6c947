"""Generate: a new image from a prompt."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops.base import (
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
    return fields.Integer(
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
    count = fields.Integer(
        load_default=1, validate=validate.Range(1, 4), metadata={"description": "How many images"}
    )


def cost(params: dict, sizes: dict) -> float:
    width, height = params.get("width") or 1024, params.get("height") or 1024
    return float(params["count"] * max(1, -(-width * height // 1_000_000)))


@operation("generate", version=1, title="Generate", params=GenerateParams, inputs={}, cost=cost)
def run(ctx: OpContext):
    """Draw new images from a prompt, sized to the selection (or the given width and height)."""
    raise OperationError(
        "engine_unsupported", f"model {ctx.model.entry.id} cannot generate with this server version"
    )
