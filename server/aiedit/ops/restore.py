"""Restore: remove noise, repair faces and old photos (the model decides which)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from aiedit.ops.base import REQUIRED, ImageOutput, OpContext, OperationError, operation


class RestoreParams(Schema):
    strength = fields.Float(
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
)
def run(ctx: OpContext):
    """Clean up the layer: noise and grain, damaged faces, old photos (depending on the model)."""
    import numpy as np

    image = np.asarray(ctx.inputs["image"])
    ctx.progress(0, 1, "restoring")
    if ctx.model.engine == "classic":
        out = _denoise(image, ctx.params["strength"])
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

    h = 3.0 + 15.0 * strength
    rgb = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(image[..., :3]), None, h, h, 7, 21)
    return np.dstack([rgb, image[..., 3]])
