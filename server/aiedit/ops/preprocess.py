"""Preprocess: turn a picture into a control map (edges, scribble, line art, depth) so the user
can see, keep or edit it before generating with it as a control layer."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from aiedit.ops.base import (
    REQUIRED,
    Float,
    Integer,
    OpContext,
    OperationError,
    operation,
)

KINDS = ("canny", "scribble", "lineart", "depth", "pose")


class PreprocessParams(Schema):
    kind = fields.String(
        required=True,
        validate=validate.OneOf(KINDS),
        metadata={"description": "The control map to make: " + ", ".join(KINDS)},
    )
    low = Integer(
        load_default=100,
        validate=validate.Range(0, 1000),
        metadata={"description": "canny, scribble: lower hysteresis threshold"},
    )
    high = Integer(
        load_default=200,
        validate=validate.Range(0, 1000),
        metadata={"description": "canny, scribble: upper hysteresis threshold"},
    )
    thickness = Integer(
        load_default=3,
        validate=validate.Range(1, 32),
        metadata={"description": "scribble: stroke width in pixels"},
    )
    resolution = Integer(
        load_default=512,
        validate=validate.Range(64, 2048),
        metadata={"description": "lineart: the size (short side) the detector works at"},
    )
    threshold = Float(
        load_default=0.3,
        validate=validate.Range(0.0, 1.0),
        metadata={"description": "pose: keypoints less certain than this are left out"},
    )
    coarse = fields.Boolean(
        load_default=False, metadata={"description": "lineart: fewer, bolder lines"}
    )

    @validates_schema
    def _thresholds(self, data, **kwargs):
        if data.get("low", 0) > data.get("high", 0):
            raise ValidationError("low must not exceed high", "low")


def fits(params: dict, entry) -> str | None:
    """Why `entry` cannot make this map (None when it can)."""
    if params["kind"] in entry.kinds:
        return None
    return f"model {entry.id} makes {', '.join(entry.kinds) or 'no'} maps, not {params['kind']}"


@operation(
    "preprocess",
    version=1,
    title="Make a control map",
    params=PreprocessParams,
    inputs={"image": REQUIRED},
    region="layer",
    cost=lambda params, sizes: 0.1,
    model_fits=fits,
)
def run(ctx: OpContext):
    """Turn the image into a control map (same size, on black): Canny edges, a scribble, line
    art, depth or a pose skeleton, to show or edit before using it as a control layer."""
    import numpy as np

    from aiedit.ops.base import ImageOutput

    image = np.asarray(ctx.inputs["image"])
    ctx.progress(0, 1, "preprocessing")
    if ctx.model.engine == "classic":
        drawn = classic_map(ctx.model.obj.name, image, ctx.params)
    elif ctx.model.engine == "detector":
        drawn = ctx.model.obj.run(image, ctx.params)
    else:
        raise OperationError(
            "engine_unsupported", f"model {ctx.model.entry.id} cannot make control maps"
        )
    ctx.progress(1, 1, "preprocessing")
    alpha = np.full(drawn.shape[:2], 255, np.uint8)
    return [ImageOutput(np.dstack([drawn, alpha]).astype(np.uint8))]


def classic_map(method: str, image, params: dict):
    """`canny`: OpenCV's Canny on the grey image, white edges on black, exactly
    `cv2.Canny(gray, low, high)`. `scribble`: the same edges on a slightly blurred image,
    thickened to `thickness` pixels: bold strokes like a quick sketch (no weights)."""
    import cv2
    import numpy as np

    image = np.asarray(image)
    code = cv2.COLOR_RGBA2GRAY if image.shape[2] == 4 else cv2.COLOR_RGB2GRAY  # same weights
    gray = cv2.cvtColor(image, code)
    if method == "canny":
        edges = cv2.Canny(gray, params["low"], params["high"])
    elif method == "scribble":
        edges = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), params["low"], params["high"])
        size = params["thickness"]
        if size > 1:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            edges = cv2.dilate(edges, kernel)
    else:
        raise OperationError("engine_unsupported", f"classic method {method} makes no map")
    return cv2.merge([edges, edges, edges])
