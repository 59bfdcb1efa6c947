"""Video: animate an image into a short clip."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops.base import (
    REQUIRED,
    OpContext,
    OperationError,
    guidance_field,
    negative_prompt_field,
    operation,
    prompt_field,
    seed_field,
    steps_field,
)


class VideoParams(Schema):
    prompt = prompt_field()
    negative_prompt = negative_prompt_field()
    frames = fields.Integer(
        load_default=25,
        validate=validate.Range(2, 257),
        metadata={"description": "Number of frames"},
    )
    fps = fields.Integer(
        load_default=24,
        validate=validate.Range(1, 60),
        metadata={"description": "Frames per second of the MP4"},
    )
    steps = steps_field()
    guidance = guidance_field()
    seed = seed_field()


def cost(params: dict, sizes: dict) -> float:
    return float(params["frames"])


@operation(
    "video",
    version=1,
    title="Image to video",
    params=VideoParams,
    inputs={"image": REQUIRED},
    region="layer",
    cost=cost,
)
def run(ctx: OpContext):
    """Animate the layer into a clip: one result per frame, then the MP4."""
    raise OperationError(
        "engine_unsupported",
        f"model {ctx.model.entry.id} cannot make video with this server version",
    )
