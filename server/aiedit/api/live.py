"""Live sessions: open one with an operation, a model and params; send frames (multipart, like a
job) and get each re-rendered image back in the answer; delete it when done."""

from __future__ import annotations

import json

import numpy as np
from flask import Response, current_app, g
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from aiedit.api.errors import ApiError
from aiedit.api.job_request import (
    JobFilesSchema,
    RawSizeSchema,
    RegionSchema,
    check_capacity,
    check_operation,
    check_prompt,
    fit_model,
    load_params,
    pick_model,
    read_inputs,
    region_of,
)
from aiedit.api.jobs import _long_polls
from aiedit.api.models import require_runnable
from aiedit.imaging.codec import ImageInputError, decode_image, decode_mask, encode
from aiedit.jobs.live import Frame, FrameTimeout, SessionClosed, Superseded, describe_session
from aiedit.ops.base import PART_NAMES, registry

blp = Blueprint("live", __name__, url_prefix="/v1", description="Live painting sessions")

LIVE_OPERATIONS = ("generate", "inpaint")
FRAME_FORMATS = {"png": "image/png", "rgba": "application/octet-stream"}


class LiveRequestSchema(Schema):
    operation = fields.String(required=True, validate=validate.OneOf(LIVE_OPERATIONS))
    model = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 128))
    params = fields.Dict(keys=fields.String(), load_default=dict)


class LiveSessionSchema(Schema):
    id = fields.String(required=True)
    operation = fields.String(required=True)
    model = fields.String(required=True)
    params = fields.Dict(required=True, metadata={"description": "with the session's seed"})
    idle_timeout_s = fields.Float(required=True)
    frames_url = fields.String(required=True)


class FrameRequestSchema(Schema):
    """The optional `request` part of a frame."""

    params = fields.Dict(keys=fields.String(), load_default=dict,
                         metadata={"description": "params that change from now on (prompt, "
                                                  "strength, seed, ...)"})
    region = fields.Nested(RegionSchema, load_default=None, allow_none=True)
    raw = fields.Dict(keys=fields.String(validate=validate.OneOf(PART_NAMES)),
                      values=fields.Nested(RawSizeSchema), load_default=dict)


class FrameFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    request = fields.String(load_default=None,
                            metadata={"description": "JSON: {params?, region?, raw?}"})


class FrameArgs(Schema):
    format = fields.String(load_default="png", validate=validate.OneOf(list(FRAME_FORMATS)),
                           metadata={"description": "png (default) or rgba (raw 8-bit RGBA)"})


def _services():
    return current_app.extensions["aiedit"]


def _live():
    services = _services()
    live = services.live
    if services.config.hosted:  # frames are not priced: a hosted server sells jobs only
        raise ApiError(
            501, "live_unavailable",
            "live sessions are not offered on a hosted server (they are not priced in "
            "credits); submit jobs instead",
        )
    if live is None or not live.available:
        raise ApiError(501, "live_unavailable",
                       "live sessions are not available on this server; submit jobs instead")
    return live


def _own_session(session_id: str):
    session = _live().get(session_id)
    principal = g.principal
    if session is None or (session.owner != principal.owner and not principal.is_admin):
        raise ApiError(404, "live_session_not_found",
                       f"no live session {session_id!r} (it may have expired after "
                       "60 s without frames, or been deleted)")
    return session


@blp.route("/live", methods=["POST"])
@blp.arguments(LiveRequestSchema)
@blp.response(201, LiveSessionSchema)
@blp.alt_response(422, description="Invalid operation, model or params")
@blp.alt_response(429, description="Too many live sessions or jobs queued (`queue_full`)")
@blp.alt_response(501, description="Live sessions are not available in this mode")
def open_session(req):
    """Open a live session: frames sent to it are rendered with this model and these params"""
    live = _live()
    services = _services()
    config = services.config
    owner = g.principal.owner
    op = registry()[req["operation"]]
    entry = pick_model(op, req["model"])
    params = load_params(op, req["params"])
    check_prompt(owner, params)
    entry = fit_model(op, entry, req["model"] is not None, params)
    require_runnable(entry, g.principal, services)  # no downloads behind a non-admin's back
    if entry.engine != "diffusion":
        raise ApiError(422, "live_unsupported_model",
                       f"model {entry.id} is not a diffusion model; live sessions need one")
    if params["count"] != 1:
        raise ApiError(422, "invalid_params", "count: a live frame makes one image",
                       errors={"params": {"count": ["must be 1 in a live session"]}})
    check_capacity(owner)  # a full queue or disk refuses new sessions as it refuses jobs
    mine, everyone = live.count(owner), live.count()
    if config.max_live_sessions_per_owner and mine >= config.max_live_sessions_per_owner:
        raise ApiError(429, "too_many_live_sessions",
                       f"you have {mine} live sessions open, the most this server allows one "
                       f"caller (max_live_sessions_per_owner); delete one first",
                       headers={"Retry-After": "5"})
    if config.max_live_sessions and everyone >= config.max_live_sessions:
        raise ApiError(429, "too_many_live_sessions",
                       f"the server has {everyone} live sessions open, its limit "
                       "(max_live_sessions); retry later", headers={"Retry-After": "10"})
    session = live.open(owner, op.id, entry, {**req["params"], "seed": params["seed"]})
    return describe_session(session)


@blp.route("/live/<session_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="No such session")
def close_session(session_id):
    """End a live session (a frame still running stops at its next step)"""
    _own_session(session_id)
    _live().close(session_id)
    return Response(status=204)


@blp.route("/live/<session_id>/frames", methods=["POST"])
@blp.arguments(FrameArgs, location="query")
@blp.arguments(FrameFormSchema, location="form")
@blp.arguments(JobFilesSchema, location="files")
@blp.doc(
    responses={
        "200": {
            "description": "The frame's image (headers X-Image-Width, X-Image-Height, "
            "X-Offset-X, X-Offset-Y, X-Seed)",
            "content": {ct: {"schema": {"type": "string", "format": "binary"}}
                        for ct in FRAME_FORMATS.values()},
        }
    }
)
@blp.alt_response(404, description="No such session")
@blp.alt_response(409, description="`superseded`: a newer frame arrived before this one "
                                   "started; `live_session_closed`: deleted or expired meanwhile")
@blp.alt_response(422, description="Invalid params or files")
@blp.alt_response(429, description="Too many long-polls, event streams and frames open")
@blp.alt_response(503, description="`live_busy`: the device stayed busy; the frame was withdrawn")
def send_frame(args, form, files, session_id):
    """Render one frame: the multipart parts of a job (`image`, `mask`, ...) and an optional
    `request` JSON part with the params that change"""
    services = _services()
    live = _live()
    session = _own_session(session_id)
    op = registry()[session.operation]
    text = form.get("request")
    changes = _frame_request(text) if text else FrameRequestSchema().load({})
    merged = {**session.params, **changes["params"]}
    params = load_params(op, merged)
    check_prompt(session.owner, params)  # a term added while the session is open counts too
    if params["count"] != 1:
        raise ApiError(422, "invalid_params", "count: a live frame makes one image",
                       errors={"params": {"count": ["must be 1 in a live session"]}})
    inputs = read_inputs(op, files, changes["raw"], formats=("rgba8",))  # frames are 8-bit
    region = region_of(changes, inputs, params)
    sizes = {name: (f.width, f.height) for name, f in inputs.items()}
    sizes.setdefault("image", (region.width, region.height))
    check_operation(op, params, sizes, session.entry)
    if changes["params"]:
        live.update_params(session, merged)  # later frames keep the change
    frame = Frame(params=params, inputs=_decoded(inputs), region=region, raw_params=merged)
    try:
        # a frame holds a server thread while it waits and renders, as a long-poll does
        with _long_polls().slot(g.principal.owner):
            output = live.submit(session, frame, timeout=services.config.max_wait_s)
    except FrameTimeout:
        raise ApiError(503, "live_busy",
                       f"the device was busy with jobs for {services.config.max_wait_s:g} s, so "
                       "this frame was withdrawn; send the next one", headers={"Retry-After": "1"}
                       ) from None
    except ApiError:
        raise
    except Superseded:
        raise ApiError(409, "superseded",
                       f"a newer frame for live session {session_id} arrived before this one "
                       "started; that one is answered instead") from None
    except SessionClosed as exc:
        raise ApiError(409, "live_session_closed",
                       f"live session {session_id} ended ({exc}) before this frame was "
                       "rendered") from None
    except Exception as exc:
        code = getattr(exc, "code", None)
        if code is None:
            raise
        raise ApiError(500 if code == "internal_error" else 422, code, exc.message) from None
    pixels = np.ascontiguousarray(output.pixels)
    height, width = pixels.shape[:2]
    headers = {
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Offset-X": str(region.x + output.dx),
        "X-Offset-Y": str(region.y + output.dy),
        "Cache-Control": "no-store",
    }
    if output.seed is not None:
        headers["X-Seed"] = str(output.seed)
    if args["format"] == "rgba":
        return Response(pixels.tobytes(), mimetype=FRAME_FORMATS["rgba"], headers=headers)
    return Response(encode(pixels, "png"), mimetype="image/png", headers=headers)


def _frame_request(text: str) -> dict:
    from marshmallow import ValidationError

    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "request_invalid_json",
                       f"the `request` part is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_request", "the `request` part must be a JSON object")
    try:
        return FrameRequestSchema().load(raw)
    except ValidationError as exc:
        details = "; ".join(f"{k}: {v}" for k, v in exc.normalized_messages().items())
        raise ApiError(422, "invalid_request", f"invalid `request`: {details}",
                       errors=exc.normalized_messages()) from None


def _decoded(inputs) -> dict[str, np.ndarray]:
    """The frame's files as pixels (they were checked by `read_inputs`)."""
    config = _services().config
    out = {}
    try:
        for name, f in inputs.items():
            if f.kind == "raw":
                shape = (f.height, f.width, f.channels) if f.channels > 1 else (f.height, f.width)
                out[name] = np.frombuffer(bytes(f.data), np.uint8).reshape(shape)
            else:
                decode = decode_mask if name == "mask" else decode_image
                out[name] = decode(name, bytes(f.data), config.max_pixels, config.max_side)
    except ImageInputError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    return out
