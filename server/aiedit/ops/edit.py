"""Edit: change an image by instruction (semantic, appearance or text edits)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops.base import (
    OPTIONAL,
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

MODES = ("semantic", "appearance", "text")


class EditParams(Schema):
    prompt = prompt_field(required=True)
    negative_prompt = negative_prompt_field()
    mode = fields.String(
        load_default="semantic",
        validate=validate.OneOf(MODES),
        metadata={
            "description": "semantic: free change; appearance: only the selection changes; "
            "text: replace written text keeping layout and font"
        },
    )
    text = fields.String(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"description": "The new text (text mode)"},
    )
    steps = steps_field()
    guidance = guidance_field()
    seed = seed_field()
    working_resolution = fields.Integer(
        load_default=1024,
        validate=validate.Range(256, 2048),
        metadata={"description": "Longest side the model works at, pixels"},
    )


@operation(
    "edit",
    version=1,
    title="Edit by instruction",
    params=EditParams,
    inputs={"image": REQUIRED, "mask": OPTIONAL, "reference": OPTIONAL},
)
def run(ctx: OpContext):
    """Change the image as the prompt says: objects, style, lighting, or the words written in it."""
    raise OperationError(
        "engine_unsupported", f"model {ctx.model.entry.id} cannot edit with this server version"
    )
