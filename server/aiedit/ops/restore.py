"""Restore: remove noise, repair faces and old photos (the model decides which)."""

from __future__ import annotations

from marshmallow import Schema, validate

from aiedit.ops.base import (
    DEEP,
    REQUIRED,
    Float,
    ImageOutput,
    OpContext,
    OperationError,
    operation,
)


class RestoreParams(Schema):
    strength = Float(
        load_default=0.5,
        allow_nan=False,
        validate=validate.Range(0.0, 1.0),
        metadata={"description": "0 = gentle, 1 = strongest"},
    )


@operation(
    "restore",
    version=1,
    title="Restore",
    params=RestoreParams,
    inputs={"image": REQUIRED},
    region="layer",
    input_formats=DEEP,
)
def run(ctx: OpContext):
    """Clean up the layer: noise and grain, damaged faces, old photos (depending on the model).
    A 16-bit layer stays 16-bit: nets (denoisers, face restorers) compute at 16 bits; the
    classic denoiser works at 8 bits and its result replaces only the pixels it changed."""
    import numpy as np

    image = np.asarray(ctx.inputs["image"])
    ctx.progress(0, 1, "restoring")
    if ctx.model.engine == "classic":
        out = _denoise(image, ctx.params["strength"])
    elif ctx.model.engine == "spandrel":
        out = _model_restore(image, ctx)
    else:
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot restore with this server version",
        )
    ctx.progress(1, 1, "restoring")
    return [ImageOutput(out)]


def _denoise(image, strength: float):
    import cv2
    import numpy as np

    from aiedit.imaging.codec import to_8bit, to_16bit

    h = 3.0 + 15.0 * strength
    rgb8 = np.ascontiguousarray(to_8bit(image[..., :3]))
    rgb = cv2.fastNlMeansDenoisingColored(rgb8, None, h, h, 7, 21)
    if image.dtype == np.uint16:  # 8-bit by nature: only the pixels it changed take its values
        changed = (rgb != rgb8).any(axis=2, keepdims=True)
        rgb = np.where(changed, to_16bit(rgb), image[..., :3])
    return np.dstack([rgb, image[..., 3]])


def _model_restore(image, ctx):
    """Face nets: each detected face, aligned and blended back. Other nets (denoisers): the
    whole layer in tiles. `strength` is how much of the net's result shows (for CodeFormer it
    trades fidelity to the input for quality instead)."""
    import numpy as np

    net = ctx.model.obj
    strength = ctx.params["strength"]
    rgb = np.ascontiguousarray(image[..., :3])
    if net.purpose == "FaceSR":
        restored = _restore_faces(rgb, net, strength, ctx)
    elif net.scale == 1:
        from aiedit.ops.upscale import run_model_tiled

        restored = _mix(rgb, run_model_tiled(rgb, ctx, stage="restoring"), strength)
    else:
        raise OperationError("model_unsuitable",
                             f"model {ctx.model.entry.id} enlarges images ({net.scale}x); use it "
                             "with upscale, or pick a restore model")
    return np.dstack([restored, image[..., 3]])


def _restore_faces(rgb, net, strength: float, ctx):
    from aiedit.imaging.faces import restore_faces

    if net.architecture == "CodeFormer":
        def restore(crop):
            return net(crop, fidelity=1.0 - strength)
        blend = 1.0
    else:
        restore, blend = net, strength
    restored, count = restore_faces(rgb, restore, blend,
                                    lambda done, total: ctx.progress(done, total, "faces"))
    if count == 0:
        raise OperationError("no_face_found",
                             f"model {ctx.model.entry.id} restores faces, and no face was found in "
                             "the layer (faces must be at least 16 pixels and mostly frontal); "
                             "use a denoising model for other images")
    return restored


def _mix(original, result, strength: float):
    import cv2

    return cv2.addWeighted(result, strength, original, 1.0 - strength, 0.0)
