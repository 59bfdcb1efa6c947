"""A job submission, read and checked before anything is stored: the `request` JSON, the
operation, the model, the params, the files, the region, the server's capacity. The jobs view
calls `read_submission`; so can anything else that needs a request checked the same way."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, g, request
from flask_smorest.fields import Upload
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from PIL import Image
from sqlalchemy import String, bindparam, func, select
from sqlalchemy.orm import Session

from aiedit.api.errors import ApiError
from aiedit.api.models import require_runnable
from aiedit.auth import blocklist, limits
from aiedit.billing import ledger, pricing
from aiedit.engines import default_model, installed_for
from aiedit.imaging.codec import (
    GRAY8,
    RAW_FORMATS,
    RGBA8,
    RGBA16,
    ImageInputError,
    check_size,
    decode_image,
    decode_mask,
    decode_raw,
    depth_of,
)
from aiedit.jobs.runner import QUEUED, InputFile, NewJob
from aiedit.ops.base import (
    INPUT_NAMES,
    MAX_CONTROLS,
    PART_NAMES,
    REQUIRED,
    UNUSED,
    OperationError,
    Region,
    registry,
)
from aiedit.store.models import Job

log = logging.getLogger(__name__)

COORD = validate.Range(-(2**24), 2**24)
ENCODED_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp",
                      "GIF": "gif"}
QUEUE_FULL_RETRY_S = 10
BUSY_RETRY_S = 2


# --- request schemas --------------------------------------------------------------------------


class RegionSchema(Schema):
    x = fields.Integer(required=True, strict=True, validate=COORD)
    y = fields.Integer(required=True, strict=True, validate=COORD)
    width = fields.Integer(required=True, strict=True, validate=validate.Range(1, 2**20))
    height = fields.Integer(required=True, strict=True, validate=validate.Range(1, 2**20))


class RawSizeSchema(Schema):
    width = fields.Integer(required=True, strict=True, validate=validate.Range(1, 2**20))
    height = fields.Integer(required=True, strict=True, validate=validate.Range(1, 2**20))
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(list(RAW_FORMATS)),
        metadata={
            "description": "rgba8 (default for images: 4 bytes a pixel), rgba16 (16-bit RGBA, "
            "little-endian, 8 bytes a pixel; only for `image`, and only where the operation's "
            "input_formats lists it) or gray8 (masks, the default and only format for them)"
        },
    )


class JobRequestSchema(Schema):
    """The `request` part of a job submission."""

    operation = fields.String(required=True, validate=validate.Length(1, 64))
    model = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 128))
    params = fields.Dict(keys=fields.String(), load_default=dict)
    region = fields.Nested(RegionSchema, load_default=None, allow_none=True)
    style = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, 64),
        metadata={"description": "A style preset from GET /v1/styles"},
    )
    raw = fields.Dict(
        keys=fields.String(validate=validate.OneOf(PART_NAMES)),
        values=fields.Nested(RawSizeSchema),
        load_default=dict,
    )


class JobFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    request = fields.String(
        required=True,
        metadata={
            "description": "JSON: {operation, model?, style?, params?, "
            "region? {x, y, width, height}, "
            "raw? {image|mask|reference|control<n>: {width, height, format?}}}"
        },
    )


def _control_parts() -> dict:
    """Extra image parts `control0` ... `control7`, named by `params.control[].input`."""
    return {
        f"control{i}": Upload(
            metadata={"description": "A control image (map or picture), same size as the image"}
        )
        for i in range(MAX_CONTROLS)
    }


class JobFilesSchema(Schema.from_dict(_control_parts())):
    class Meta:
        unknown = EXCLUDE

    image = Upload(metadata={"description": "The pixels to work on: an image file (a 16-bit "
                                            "PNG where the operation takes rgba16) or raw "
                                            "rgba8/rgba16, see `raw`"})
    mask = Upload(metadata={"description": "Single channel, same size as image, 255 = change"})
    reference = Upload(metadata={"description": "A reference image (edit)"})


class JobSubmissionSchema(Schema.from_dict(_control_parts())):
    """The documented multipart body: the `request` part is JSON (see `encoding`)."""

    request = fields.Nested(JobRequestSchema, required=True)
    image = Upload(metadata={"description": "The pixels to work on: an image file (a 16-bit "
                                            "PNG where the operation takes rgba16) or raw "
                                            "rgba8/rgba16, see `raw`"})
    mask = Upload(metadata={"description": "Single channel, same size as image, 255 = change"})
    reference = Upload(metadata={"description": "A reference image (edit)"})


# --- the submission ---------------------------------------------------------------------------


@dataclass
class Submission:
    """A checked request: what `JobRunner.submit` stores, and how to recognise a retry of it."""

    new: NewJob
    request_hash: str
    price: int = 0  # credits (hosted mode holds them at submission)


def read_submission(owner: str, request_text: str, files, key: str | None,
                    job_id: str | None = None) -> Submission:
    """Check everything about a submission; raise `ApiError` (4xx) naming the first problem.
    `files`: the uploaded files by part name, or a function of the checked request that reads
    them (called after the request, its model and params passed their checks). `job_id`: the
    new job's id, when its files are stored under it already (raw bodies)."""
    services = _services()
    raw_request, req = parse_request(request_text)
    ops = registry()
    op = ops.get(req["operation"])
    if op is None:
        raise ApiError(
            422,
            "unknown_operation",
            f"unknown operation {req['operation']!r}; known: {', '.join(ops)}",
            errors={"operation": ["unknown"]},
        )
    if req["style"] is not None:
        apply_style(op, req)
    entry = pick_model(op, req["model"])
    params = load_params(op, req["params"])
    check_prompt(owner, params)
    entry = fit_model(op, entry, req["model"] is not None, params)
    require_runnable(entry, g.principal, services)
    inputs = read_inputs(op, files(req) if callable(files) else files, req["raw"])
    region = region_of(req, inputs, params)
    sizes = {name: (f.width, f.height) for name, f in inputs.items()}
    sizes.setdefault("image", (region.width, region.height))
    check_operation(op, params, sizes, entry)
    for extra in op.extra_models(params) if op.extra_models else []:
        require_runnable(services.catalog.get(extra), g.principal, services)
    if entry.engine == "classic":
        _check_classic_size(entry.id, *sizes["image"], services.config.max_classic_pixels)
    new = NewJob(
        owner=owner,
        operation=op.id,
        model=entry.id,
        params=op.params().dump(params),
        region=region,
        inputs=inputs,
        cost=op.cost(params, sizes),
        idempotency_key=key,
        **({"id": job_id} if job_id else {}),
    )
    price = pricing.quote(op, entry, params, sizes, services.billing.rates,
                          services.catalog).credits
    submission = Submission(new, request_hash(raw_request, inputs), price)
    new.request_hash = submission.request_hash
    return submission


def apply_style(op, req: dict) -> None:
    """Expand the named style into the request: its model when none is named, its prompt
    template, negative prompt, LoRAs and default params (the job stores the result)."""
    styles = _services().styles
    style = styles.get(req["style"]) if styles is not None else None
    if style is None:
        known = ", ".join(s.id for s in styles or [])
        raise ApiError(422, "unknown_style",
                       f"unknown style {req['style']!r}; GET /v1/styles lists them ({known})",
                       errors={"style": ["unknown"]})
    if op.id not in style.operations:
        raise ApiError(422, "style_wrong_operation",
                       f"style {style.id} is for {', '.join(style.operations)}, not {op.id}",
                       errors={"style": ["wrong operation"]})
    if req["model"] is None and style.model is not None:
        req["model"] = style.model
    req["params"] = style.apply(req["params"])


def load_params(op, raw_params: dict) -> dict:
    """The operation's params, loaded by its schema; 422 `invalid_params` naming each problem."""
    try:
        return op.params().load(raw_params)
    except ValidationError as exc:
        errors = exc.normalized_messages()
        details = "; ".join(
            f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in errors.items()
        )
        raise ApiError(
            422, "invalid_params", f"invalid params for {op.id}: {details}",
            errors={"params": errors},
        ) from None


def check_prompt(owner: str, params: dict) -> None:
    """422 `prompt_refused` when a prompt holds a term of the block list (after any style
    expanded it); the refusal is counted for the owner. The answer names the field, never the
    term or the text, and the log line has neither."""
    db = _services().db
    field = blocklist.refused_field(db, params)
    if field is None:
        return
    blocklist.count_refusal(db, owner)
    log.info("prompt refused by the block list", extra={"owner": owner, "field": field})
    raise ApiError(
        422, "prompt_refused",
        f"params.{field} was refused: it contains words this server does not accept",
        errors={"params": {field: ["refused by the block list"]}},
    )


def check_operation(op, params: dict, sizes: dict, entry) -> None:
    """The operation's own refusals (before anything runs), as 422."""
    if op.validate is not None:
        services = _services()
        try:
            op.validate(params, sizes, services.config, entry, services.catalog)
        except OperationError as exc:
            raise ApiError(422, exc.code, exc.message) from None


def parse_request(text: str) -> tuple[dict, dict]:
    """The `request` part: (the JSON object as sent, the loaded request)."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(
            400, "request_invalid_json", f"the `request` part is not valid JSON: {exc}"
        ) from None
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_request", "the `request` part must be a JSON object")
    try:
        return raw, JobRequestSchema().load(raw)
    except ValidationError as exc:
        details = "; ".join(f"{k}: {v}" for k, v in exc.normalized_messages().items())
        raise ApiError(
            422, "invalid_request", f"invalid `request`: {details}",
            errors=exc.normalized_messages(),
        ) from None


def pick_model(op, model_id: str | None):
    catalog = _services().catalog
    if model_id is None:
        entry = default_model(catalog, op.id)
        if entry is None:
            raise ApiError(
                422,
                "no_model",
                f"no model installed for {op.id}: install one with "
                f"`aiedit models pull <id>` (see `aiedit models list`)",
            )
        return entry
    entry = catalog.get(model_id)
    if entry is None:
        raise ApiError(
            422,
            "unknown_model",
            f"unknown model {model_id!r}; GET /v1/models lists the known ones",
            errors={"model": ["unknown"]},
        )
    if not entry.serves(op.id):
        raise ApiError(
            422,
            "model_wrong_operation",
            f"model {model_id!r} does not do {op.id} (it does: {', '.join(entry.operations)})",
            errors={"model": ["wrong operation"]},
        )
    return entry


def fit_model(op, entry, named: bool, params: dict):
    """The model for these params: a named one must fit them; the default is the preferred
    installed model that does."""
    reason = op.model_fits(params, entry) if op.model_fits else None
    if reason is None:
        return entry
    if named:
        raise ApiError(422, "model_does_not_fit", f"{reason}; pick another model",
                       errors={"model": [reason]})
    for candidate in installed_for(_services().catalog, op.id):
        if op.model_fits(params, candidate) is None:
            return candidate
    raise ApiError(422, "no_model",
                   f"no installed model for {op.id} fits these params ({reason}); install one "
                   "with `aiedit models pull <id>` (see `aiedit models list`)")


def read_inputs(op, files: dict, raw_sizes: dict,
                formats: tuple[str, ...] | None = None) -> dict[str, InputFile]:
    """The uploaded files, each checked (decodable, within limits) and kept as it was sent:
    the runner decodes it again when the job runs, so nothing bigger than the upload is
    stored. `formats`: what the `image` may come in (the operation's input_formats unless
    the caller takes less); 16-bit PNGs are read at 16 bits only where rgba16 is among them."""
    formats = op.input_formats if formats is None else formats
    config = _services().config
    limits = (config.max_pixels, config.max_side)
    given = {name: f for name, f in files.items() if f is not None}
    for name in INPUT_NAMES:
        if op.input_mode(name) == REQUIRED and name not in given:
            raise ApiError(
                422, "missing_input", f"{op.id} needs an `{name}` file", errors={name: ["required"]}
            )
    for name in given:
        if op.input_mode(name) == UNUSED:
            raise ApiError(
                422,
                "unexpected_input",
                f"{op.id} takes no `{name}` file",
                errors={name: ["not used by this operation"]},
            )
    for name in raw_sizes:
        if name not in given:
            raise ApiError(
                422,
                "invalid_request",
                f"`raw` declares `{name}` but no such file was sent",
                errors={"raw": [name]},
            )
    inputs = {}
    try:
        for name, upload in given.items():
            channels = 1 if name == "mask" else 4
            if isinstance(upload, StoredUpload):  # a raw body's part, on disk already
                size = raw_sizes[name]
                fmt = raw_format(op, name, size["format"], formats)
                check_size(name, size["width"], size["height"], *limits)
                inputs[name] = InputFile(b"", "raw", size["width"], size["height"], channels,
                                         fmt, stored=upload.blob, stored_size=upload.size)
                continue
            data = upload_bytes(upload)
            if name in raw_sizes:
                size = raw_sizes[name]
                fmt = raw_format(op, name, size["format"], formats)
                decode_raw(name, data, size["width"], size["height"], fmt, *limits)
                inputs[name] = InputFile(data, "raw", size["width"], size["height"], channels,
                                         fmt)
                continue
            if name == "mask":
                decoded = decode_mask(name, data, *limits)
            else:
                decoded = decode_image(name, data, *limits,
                                       deep=name == "image" and RGBA16 in formats)
            height, width = decoded.shape[:2]
            fmt = GRAY8 if name == "mask" else f"rgba{depth_of(decoded)}"
            del decoded  # checked; the job decodes it again when it runs
            inputs[name] = InputFile(data, _extension(data), width, height, channels, fmt)
    except ImageInputError as exc:
        raise ApiError(
            exc.status, exc.code, exc.message, errors={exc.field: [exc.message]}
        ) from None
    image, mask = inputs.get("image"), inputs.get("mask")
    if image and mask and (mask.width, mask.height) != (image.width, image.height):
        raise ApiError(
            422,
            "mask_size_mismatch",
            f"mask: it is {mask.width}x{mask.height} but the image is "
            f"{image.width}x{image.height}; they must be the same size",
            errors={"mask": ["size differs from image"]},
        )
    return inputs


def raw_format(op, name: str, fmt: str | None, formats: tuple[str, ...]) -> str:
    """The declared raw format of part `name`, checked against what it may be: masks are
    gray8; the image rgba8 or what the operation takes; other images rgba8."""
    allowed = (GRAY8,) if name == "mask" else formats if name == "image" else (RGBA8,)
    fmt = fmt or allowed[0]
    if fmt not in allowed:
        if name == "image":
            why = (f"{op.id} takes {' or '.join(allowed)} images (see input_formats in "
                   "GET /v1/operations); send 8-bit pixels as rgba8")
        else:
            why = f"a raw `{name}` is {allowed[0]}" + (
                " (16-bit pixels are taken for `image` only)" if fmt == RGBA16 else "")
        raise ApiError(422, "format_not_accepted", f"{name}: raw format {fmt} is not accepted "
                       f"here: {why}", errors={"raw": {name: [f"format {fmt} not accepted"]}})
    return fmt


def upload_bytes(upload):
    """An uploaded file's bytes, taken from the request's spool without another copy (a raw
    body's parts are its bytes already)."""
    if isinstance(upload, (bytes, bytearray, memoryview)):
        return upload
    stream = upload.stream
    take = getattr(stream, "take", None)
    return take() if take is not None else upload.read()


# --- raw bodies (POST /v1/jobs/raw) -----------------------------------------------------------

RAW_BODY_ORDER = ("image", "reference", "mask", *(f"control{i}" for i in range(MAX_CONTROLS)))


@dataclass
class StoredUpload:
    """A raw body's part, stored as `blob` in the new job's folder as it arrived (made durable
    by `JobRunner.submit`, before the job is acknowledged)."""

    blob: str
    size: int


def read_raw_body(req: dict, job_id: str) -> dict[str, StoredUpload]:
    """The files a raw body holds: those `raw` declares, back to back in RAW_BODY_ORDER,
    streamed from the request body straight into the new job's folder (no multipart parsing,
    no copy of the upload in memory; `JobRunner.submit` syncs them to disk while the job
    starts). The body's length is checked against
    the declared sizes before a byte is read. The caller removes the folder if the job is not
    stored after all (a refusal after this); a crash leaves it to the orphan sweep."""
    raw = req["raw"]
    if not raw:
        raise ApiError(422, "invalid_request",
                       "`raw` must declare the files the body holds (encoded images go to "
                       "POST /v1/jobs as multipart)", errors={"raw": ["required"]})
    parts = []
    for name in RAW_BODY_ORDER:
        if name in raw:
            size = raw[name]
            fmt = size["format"] or (GRAY8 if name == "mask" else RGBA8)
            channels, dtype = RAW_FORMATS[fmt]
            nbytes = size["width"] * size["height"] * channels * dtype.itemsize
            parts.append((name, nbytes, f"{name} {size['width']}x{size['height']} {fmt} "
                                        f"({nbytes} bytes)"))
    expected = sum(nbytes for _, nbytes, _ in parts)
    length = request.content_length
    if length is None:
        raise ApiError(411, "length_required", "a raw body needs a Content-Length header")
    limit = _services().config.max_upload_bytes
    if length > limit:
        raise ApiError(413, "too_large", f"the body is {length} bytes, more than this server "
                       f"accepts ({limit} bytes, setting max_upload_bytes)")
    if length != expected:
        raise ApiError(
            422, "raw_size_mismatch",
            f"the body is {length} bytes but `raw` declares "
            f"{' + '.join(d for _, _, d in parts)} = {expected} bytes; send the declared files "
            f"back to back in the order {', '.join(RAW_BODY_ORDER[:3])}, control0...",
            errors={"raw": ["body size differs"]},
        )
    blobs, stream, files = _services().blobs, request.stream, {}
    for name, nbytes, _ in parts:
        size = raw[name]
        blob = f"{name}.{size['format'] or (GRAY8 if name == 'mask' else RGBA8)}"
        try:
            blobs.put_stream(job_id, blob, stream, nbytes)
        except EOFError:
            raise ApiError(400, "body_truncated",
                           f"the body ended before its {expected} bytes ({name} is cut "
                           "short)") from None
        files[name] = StoredUpload(blob, nbytes)
    return files


def _extension(data) -> str:
    with Image.open(io.BytesIO(data)) as img:
        return ENCODED_EXTENSIONS.get(img.format, "img")


def region_of(req: dict, inputs: dict[str, InputFile], params: dict) -> Region:
    """Where the image sits: the request's `region` (the image's size), else at 0, 0."""
    region = req.get("region")
    if "image" in inputs:
        width, height = inputs["image"].width, inputs["image"].height
        if region is None:
            return Region(0, 0, width, height)
        if (region["width"], region["height"]) != (width, height):
            raise ApiError(
                422,
                "region_size_mismatch",
                f"region is {region['width']}x{region['height']} but the image is "
                f"{width}x{height}; the region says where the image sits, so they "
                "must match",
                errors={"region": ["size differs from image"]},
            )
        return Region(**region)
    if region is None:
        return Region(0, 0, int(params.get("width") or 1024), int(params.get("height") or 1024))
    return Region(**region)


def _check_classic_size(model: str, width: int, height: int, limit: int) -> None:
    """Classic operations run in one uninterruptible call: their size is capped up front."""
    if limit and width * height > limit:
        raise ApiError(
            422,
            "too_large_for_classic",
            f"the image is {width}x{height} ({width * height / 1e6:.1f} MP); {model} runs in "
            f"one step that cannot be canceled, so this server limits it to "
            f"{limit / 1e6:.1f} MP (max_classic_pixels): send a smaller region",
            errors={"image": ["too large for a classic model"]},
        )


# --- repeated requests (Idempotency-Key) ------------------------------------------------------


def request_hash(raw_request: dict, inputs: dict[str, InputFile]) -> str:
    """A digest of the request JSON (key order ignored) and each file's name, kind and size.
    The files' bytes are compared with the stored originals when a key is reused, so hashing
    large uploads costs nothing on the normal path."""
    described = {
        "request": raw_request,
        "files": {n: [f.kind, f.width, f.height, f.size] for n, f in sorted(inputs.items())},
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def same_request(existing: Job, submission: Submission) -> bool:
    """Is this submission the one `existing` was created from?"""
    if existing.request_hash is not None and existing.request_hash != submission.request_hash:
        return False
    blobs = _services().blobs
    stored = existing.inputs or {}
    if set(stored) != set(submission.new.inputs):
        return False
    for name, upload in submission.new.inputs.items():
        ref = stored[name]
        if not isinstance(ref, dict):  # stored before uploads were kept as sent: no bytes
            continue
        sent = (blobs.path(submission.new.id, upload.stored) if upload.stored
                else upload.data)
        if not _file_equals(blobs.path(existing.id, ref["blob"]), sent):
            return False
    return True


def _file_equals(path, data) -> bool:
    """Does the file at `path` hold exactly `data` (bytes, or another file's path)?"""
    if isinstance(data, os.PathLike):
        try:
            with open(path, "rb") as mine, open(data, "rb") as theirs:
                while True:
                    chunk = mine.read(1 << 22)
                    if chunk != theirs.read(1 << 22):
                        return False
                    if not chunk:
                        return True
        except FileNotFoundError:
            return False
    view = memoryview(data)
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, 2) != len(view):
                return False
            fh.seek(0)
            offset = 0
            while offset < len(view):
                chunk = fh.read(1 << 22)
                if not chunk or chunk != view[offset : offset + len(chunk)]:
                    return False
                offset += len(chunk)
    except FileNotFoundError:
        return False
    finally:
        view.release()
    return True


def reused_key_error(key: str) -> ApiError:
    return ApiError(
        422,
        "idempotency_key_reused",
        f"Idempotency-Key {key!r} was already used for a different request (other JSON or "
        "other files); use a new key for a new job",
    )


# --- capacity ---------------------------------------------------------------------------------


EARLY_QUEUE_CHECK_BYTES = 1 << 20  # smaller uploads leave the queue caps to `admission`


def check_capacity(owner: str, body_bytes: int | None = None) -> None:
    """Refuse a new job while the disk is nearly full or the queue is at its limits (early,
    before the upload is read; `admission` checks the limits again as the job is stored, with
    the same answer). The early count of the queue is skipped for a body under
    EARLY_QUEUE_CHECK_BYTES: reading it costs less than the round trip that would spare it."""
    services = _services()
    config = services.config
    if config.min_free_bytes > 0:
        free = shutil.disk_usage(config.data_dir).free
        if free < config.min_free_bytes:
            raise ApiError(
                507,
                "insufficient_storage",
                f"the server's data directory has {_size(free)} free, less than the "
                f"{_size(config.min_free_bytes)} it keeps in reserve (min_free_bytes); free "
                "space there (or delete finished jobs) and retry",
            )
    small = body_bytes is not None and body_bytes <= EARLY_QUEUE_CHECK_BYTES
    if (config.max_queued_per_owner or config.max_queued) and not small:
        with services.db.statements() as s:
            _check_queue(s, config, owner)


def admission(
    owner: str, user: str | None, cost: float, job_id: str | None = None, price: int = 0,
    user_limits: tuple | None = None,
) -> Callable[[Session], None]:
    """The authoritative check of the queue caps, the user's limits and (hosted mode) the
    account's credits, for `JobRunner.submit` to run in the transaction that inserts the job:
    serialized on the owner and the user, on the account, and on the whole queue while it has a
    total cap, so that of many submissions racing at a limit only those that fit are stored
    (the others get the same 429 as the early check, or 402 when the credits run out). In
    hosted mode the job's `price` is held in that transaction (see billing/ledger.py).
    `user_limits`: the user's limits as the request's key lookup read them (see
    `limits.check_in`)."""
    services = _services()
    config = services.config
    account_id = billing_account(user) if job_id is not None else None

    def admit(s: Session) -> None:
        names = [f"owner:{owner}"] + ([f"owner:{user}"] if user else [])
        if config.max_queued:
            names.append("queue")
        if account_id is not None:
            names.append(ledger.lock_name(account_id))
        capped = config.max_queued_per_owner or config.max_queued
        counts = services.db.serialize(s, *names, then=_queue_counts() if capped else None,
                                       params={"owner": owner})  # counted with the locks held
        if counts is not None:
            _refuse_if_full(config, *counts)
        try:
            limits.check_in(s, user, cost, known=user_limits)
        except limits.LimitExceeded as exc:
            raise ApiError(
                429, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_s)}
            ) from None
        if account_id is not None:
            try:
                ledger.hold(s, account_id, job_id, price, daily_limit=config.daily_credit_limit)
            except ledger.CreditError as exc:
                retry = getattr(exc, "retry_after_s", None)
                raise ApiError(
                    exc.status, exc.code, exc.message,
                    headers={"Retry-After": str(retry)} if retry else None,
                ) from None

    return admit


def billing_account(user: str | None) -> str | None:
    """Hosted mode: the id of the account that pays for a job of `user` (made on first use);
    None when nothing is charged (other modes, and keys without a user, which only admins may
    use here: see `require_account`)."""
    services = _services()
    if not services.config.hosted or not user:
        return None
    return ledger.ensure_account(services.db, user).id


def require_account(principal) -> None:
    """Hosted mode: a job needs an account to pay for it; only an operator's admin key may
    work without one."""
    if _services().config.hosted and principal.user is None and not principal.is_admin:
        raise ApiError(
            403,
            "account_required",
            "on this hosted server a job needs an account to pay for it: use a key made for "
            "a user (`aiedit keys create --user NAME`, or the account page)",
        )


@functools.cache
def _queue_counts():
    """Queued jobs, in all and the owner's (parameter owner): one round trip for both, the
    statement built once (every submission runs it)."""
    owner = bindparam("owner", type_=String)
    return (select(func.count(), func.count().filter(Job.owner == owner))
            .select_from(Job).where(Job.state == QUEUED))


def _check_queue(s: Session, config, owner: str) -> None:
    _refuse_if_full(config, *s.connection().execute(_queue_counts(), {"owner": owner}).one())


def _refuse_if_full(config, total: int, mine: int) -> None:
    retry = {"Retry-After": str(QUEUE_FULL_RETRY_S)}
    if config.max_queued_per_owner and mine >= config.max_queued_per_owner:
        raise ApiError(
            429,
            "queue_full",
            f"you have {mine} jobs queued, the most this server takes from one caller "
            f"(max_queued_per_owner = {config.max_queued_per_owner}); wait for some to finish "
            "or cancel them, then retry",
            headers=retry,
        )
    if config.max_queued and total >= config.max_queued:
        raise ApiError(
            429,
            "queue_full",
            f"the server has {total} jobs queued, its limit (max_queued = {config.max_queued}); "
            "retry when some have finished",
            headers=retry,
        )


def _size(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


# --- upload slots -----------------------------------------------------------------------------


def upload_slot(view):
    """Hold one of `upload_slots` while a submission's files are parsed, checked and stored,
    so a burst of large uploads does not hold many decoded copies at once. A request that
    waits longer than `upload_slot_wait_s` gets 503 with Retry-After."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if request.method != "POST":
            return view(*args, **kwargs)
        config = _services().config
        slots = _slots()
        if not slots.acquire(timeout=config.upload_slot_wait_s):
            raise ApiError(
                503,
                "server_busy",
                f"the server is storing {config.upload_slots} other uploads; retry in a moment",
                headers={"Retry-After": str(BUSY_RETRY_S)},
            )
        try:
            return view(*args, **kwargs)
        finally:
            slots.release()

    return wrapper


_slots_lock = threading.Lock()


def _slots() -> threading.BoundedSemaphore:
    app = current_app._get_current_object()
    with _slots_lock:
        slots = app.extensions.get("aiedit-upload-slots")
        if slots is None:
            slots = threading.BoundedSemaphore(max(1, _services().config.upload_slots))
            app.extensions["aiedit-upload-slots"] = slots
        return slots


def _services():
    return current_app.extensions["aiedit"]
