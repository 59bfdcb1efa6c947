"""Edit: change an image by instruction (semantic, appearance or text edits)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops.base import (
    OPTIONAL,
    REQUIRED,
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
    working_resolution = Integer(
        load_default=1024,
        validate=validate.Range(256, 2048),
        metadata={"description": "Longest side the model works at, pixels"},
    )


def check(params: dict, sizes: dict, config, entry, catalog) -> None:
    """What can be refused before the job is queued."""
    if params["mode"] == "appearance" and "mask" not in sizes:
        raise OperationError(
            "mask_required", "mask: appearance edits change only the selection; send a mask"
        )
    if params["mode"] == "text" and not params["text"].strip():
        raise OperationError("text_required", "text: text edits need the new text in `text`")


@operation(
    "edit",
    version=1,
    title="Edit by instruction",
    params=EditParams,
    inputs={"image": REQUIRED, "mask": OPTIONAL, "reference": OPTIONAL},
    validate=check,
)
def run(ctx: OpContext):
    """Change the image as the prompt says: objects, style, lighting, or the words written in it."""
    if ctx.model.engine != "diffusion":
        raise OperationError(
            "engine_unsupported", f"model {ctx.model.entry.id} cannot edit with this server version"
        )
    return [_diffusion(ctx)]


def text_prompt(prompt: str, text: str) -> str:
    """The instruction for a text edit: the new text quoted, layout and lettering kept."""
    quoted = text.replace('"', "\u201d")
    return (
        f'{prompt.rstrip(". ")}. Replace the text with "{quoted}". Keep the original font, '
        "size, colour, layout and position of the lettering; change nothing else."
    )


def check_inputs(ctx: OpContext) -> None:
    model = ctx.model
    if "reference" in ctx.inputs and not model.obj.name.endswith("EditPlusPipeline"):
        raise OperationError(
            "reference_unsupported",
            f"reference: model {model.entry.id} takes no reference image; use a "
            "multi-image edit model (Qwen-Image-Edit-2509) or leave it out",
        )


def _diffusion(ctx: OpContext):
    import numpy as np

    from aiedit.engines.diffusion import to_pil, to_rgba
    from aiedit.imaging import masks
    from aiedit.ops.base import ImageOutput

    check_inputs(ctx)
    p, model = ctx.params, ctx.model.obj
    image = np.asarray(ctx.inputs["image"])
    height, width = image.shape[:2]
    work = model.fit(width, height, max_side=p["working_resolution"])
    prompt = text_prompt(p["prompt"], p["text"]) if p["mode"] == "text" else p["prompt"]
    reference = ctx.inputs.get("reference")
    result = model(
        ctx.progress,
        seed=p["seed"],
        stage="editing",
        prompt=prompt,
        negative_prompt=p["negative_prompt"],
        steps=p["steps"],
        guidance=p["guidance"],
        image=to_pil(image, work),
        reference=None if reference is None else to_pil(np.asarray(reference)),
        width=work[0],
        height=work[1],
        max_area=work[0] * work[1],
    )
    edited = to_rgba(result.images[0], (width, height), alpha=image[..., 3])
    mask = ctx.inputs.get("mask")
    if mask is not None and p["mode"] != "semantic":
        edited = masks.composite(image, edited, np.asarray(mask))
    return ImageOutput(edited, seed=result.seed)
