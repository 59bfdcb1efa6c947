"""Jobs: submit, watch (long-poll), list, cancel or delete, download results."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from contextlib import contextmanager

import numpy as np
from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_smorest.pagination import PaginationMetadataSchema
from marshmallow import Schema, fields, validate
from sqlalchemy import String, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.wsgi import wrap_file

from aiedit.accounts import analytics
from aiedit.api.errors import ApiError
from aiedit.api.job_request import (
    RAW_BODY_ORDER,
    JobFilesSchema,
    JobFormSchema,
    JobSubmissionSchema,
    admission,
    check_capacity,
    read_raw_body,
    read_submission,
    require_account,
    reused_key_error,
    same_request,
    upload_slot,
)
from aiedit.imaging.codec import encode, to_8bit, to_16bit
from aiedit.jobs.runner import FINISHED, QUEUED, RUNNING
from aiedit.store.models import Job


class _JobsBlueprint(Blueprint):
    def _document_pagination_metadata(self, spec, resp_doc):
        """X-Pagination is a JSON object: OpenAPI describes that with `content`, not `schema`."""
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = {
            "description": "Pagination metadata (JSON)",
            "content": {"application/json": {"schema": PaginationMetadataSchema}},
        }


blp = _JobsBlueprint("jobs", __name__, url_prefix="/v1", description="Submit and follow jobs")

IMAGE_FORMATS = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "rgba": "application/octet-stream",
    "rgba16": "application/octet-stream",
}
RESULT_CONTENT_TYPES = [*IMAGE_FORMATS.values(), "video/mp4"]
POLL_INTERVAL_S = 0.5
LONG_POLL_RETRY_S = 1
WEBP_MAX_SIDE = 16383  # the WebP format cannot hold a larger image
PROGRESS_EVERY_S = 0.25  # a long-poll answers a state change at once, progress at most this often
# ... and a queued job's new place in the queue (and its ETA) at most this often: with many jobs
# queued every start moves all of them, and answering each move sent every waiting client
# back for another long-poll four times a second, which cost the API more than the jobs
QUEUE_EVERY_S = 1.0


# --- request schemas --------------------------------------------------------------------------


class DeleteArgs(Schema):
    cancel_only = fields.Boolean(
        load_default=False,
        metadata={"description": "Only cancel: a job that has already finished is kept (and "
                                 "returned) instead of deleted, so a late cancel loses nothing"},
    )


class WaitArgs(Schema):
    wait = fields.Float(
        load_default=0.0,
        allow_nan=False,
        validate=validate.Range(0.0, 60.0),
        metadata={"description": "Seconds to wait for a change (long-poll)"},
    )


class ResultArgs(Schema):
    format = fields.String(
        load_default=None,
        validate=validate.OneOf([*IMAGE_FORMATS, "mp4"]),
        metadata={"description": "png (default for images; 16-bit for a depth-16 result), rgba "
                                 "(raw 8-bit RGBA), rgba16 (raw 16-bit RGBA, little-endian), "
                                 "jpeg, webp (8-bit); mp4 for video"},
    )


# --- response schemas -------------------------------------------------------------------------


class ProgressSchema(Schema):
    step = fields.Integer(required=True)
    total = fields.Integer(required=True)
    fraction = fields.Float(required=True)
    stage = fields.String(required=True)
    eta_s = fields.Float(allow_none=True, required=True)


class JobErrorSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)


class OffsetSchema(Schema):
    x = fields.Integer(required=True)
    y = fields.Integer(required=True)


class ResultSchema(Schema):
    index = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["image", "video"]))
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    depth = fields.Integer(
        required=True,
        validate=validate.OneOf([8, 16]),
        metadata={"description": "Bits per channel of an image result: 16 when the job's image "
                                 "was 16-bit and the operation keeps 16 bits (see input_formats)"},
    )
    offset = fields.Nested(OffsetSchema, required=True)
    url = fields.String(required=True)
    seed = fields.Integer(allow_none=True)
    fps = fields.Float()
    frames = fields.Integer()


class JobSchema(Schema):
    id = fields.String(required=True)
    operation = fields.String(required=True)
    model = fields.String(required=True)
    state = fields.String(
        required=True,
        validate=validate.OneOf(["queued", "running", "succeeded", "failed", "canceled"]),
    )
    queue_position = fields.Integer(allow_none=True, required=True)
    progress = fields.Nested(ProgressSchema, required=True)
    error = fields.Nested(JobErrorSchema, allow_none=True, required=True)
    results = fields.List(fields.Nested(ResultSchema), required=True)
    cost = fields.Float(required=True)
    created_at = fields.AwareDateTime(required=True, default_timezone=None)
    started_at = fields.AwareDateTime(allow_none=True, required=True)
    finished_at = fields.AwareDateTime(allow_none=True, required=True)
    expires_at = fields.AwareDateTime(required=True)


# --- helpers ----------------------------------------------------------------------------------


def _services():
    return current_app.extensions["aiedit"]


def _utc(dt):
    from datetime import UTC

    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=UTC))


def job_json(job: Job) -> dict:
    services = _services()
    position = eta = None
    if job.state == QUEUED:
        position, eta = services.queue.estimate(job.id)
        position = 0 if position is None else position
    elif job.state == RUNNING:
        position = 0
    live = services.runner.live_progress(job.id) if job.state == RUNNING else None
    progress = dict(live or job.progress or {})
    if job.state == QUEUED and eta is not None:
        progress["eta_s"] = eta  # seconds until it starts
    step, total = int(progress.get("step") or 0), int(progress.get("total") or 0)
    fraction = min(1.0, step / total) if total else (1.0 if job.state == "succeeded" else 0.0)
    return {
        "id": job.id,
        "operation": job.operation,
        "model": job.model,
        "state": job.state,
        "queue_position": position,
        "progress": {
            "step": step,
            "total": total,
            "fraction": round(fraction, 4),
            "stage": progress.get("stage", job.state),
            "eta_s": progress.get("eta_s"),
        },
        "error": job.error,
        "results": [
            {"depth": 8}
            | {key: value for key, value in r.items() if key != "blob"}
            | {"url": f"/v1/jobs/{job.id}/results/{r['index']}"}
            for r in job.results or []
        ],
        "cost": job.cost,
        "created_at": _utc(job.created_at),
        "started_at": _utc(job.started_at),
        "finished_at": _utc(job.finished_at),
        "expires_at": _utc(job.expires_at),
    }


def _own_job(job_id: str) -> Job:
    with _services().db.statements() as s:  # one read: no transaction around it
        return _if_own(job_id, s.get(Job, job_id) if _plausible_id(job_id) else None)


@functools.cache
def _view_statement():
    """The columns `job_json` shows, and the owner (parameter job_id), built once."""
    return (select(Job.id, Job.owner, Job.operation, Job.model, Job.state, Job.progress,
                   Job.error, Job.results, Job.cost, Job.created_at, Job.started_at,
                   Job.finished_at, Job.expires_at)
            .where(Job.id == bindparam("job_id", type_=String)))


def job_view(services, job_id: str):
    """The job as `job_json` reads it (None: no such job), in one Core statement without an
    ORM object: every GET of a job, and every wake of a long-poll or an event stream, reads
    it."""
    with services.db.connection() as c:
        return c.execute(_view_statement(), {"job_id": job_id}).first()


def _own_job_view(job_id: str):
    """The caller's job as `job_json` reads it; 404 as `_own_job`."""
    return _if_own(job_id, job_view(_services(), job_id) if _plausible_id(job_id) else None)


def _plausible_id(job_id: str) -> bool:
    return job_id.isalnum() and len(job_id) <= 32


def _if_own(job_id: str, job):
    """`job` if the caller may see it (its owner, or an admin); 404 otherwise, as for no job."""
    principal = g.principal
    if job is None or (job.owner != principal.owner and not principal.is_admin):
        raise ApiError(
            404, "job_not_found", f"no job {job_id!r} (it may have expired or been deleted)"
        )
    return job


# --- views ------------------------------------------------------------------------------------


IDEMPOTENCY_KEY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "A retried request with the same key returns the same job",
}


def _submission_responses(view):
    """The refusals both ways of submitting a job share (the account, the model, the
    server's room for it)."""
    for status, description in (
        (507, "Not enough free disk space"),
        (503, "Too many uploads at once (`server_busy`)"),
        (429, "Queue full (`queue_full`) or rate limited"),
        (409, "The model is not installed (or cannot run here)"),
        (403, "Account suspended or missing (hosted)"),
        (402, "Not enough credits (`insufficient_credits`, hosted)"),
    ):
        view = blp.alt_response(status, description=description)(view)
    return view


@blp.route("/jobs")
class Jobs(MethodView):
    decorators = [upload_slot]

    @blp.arguments(JobFormSchema, location="form")
    @blp.arguments(JobFilesSchema, location="files")
    @blp.response(202, JobSchema)
    @blp.alt_response(400, description="Undecodable input")
    @_submission_responses
    @blp.alt_response(413, description="Upload or image too large")
    @blp.alt_response(422, description="Invalid request, params or files")
    @blp.doc(
        requestBody={
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": JobSubmissionSchema,
                    "encoding": {"request": {"contentType": "application/json"}},
                }
            },
        },
        parameters=[IDEMPOTENCY_KEY_HEADER],
    )
    def post(self, form, files):
        """Submit a job

        Everything is validated before anything is stored: the operation, the model, the
        parameters, the files (decodable, within limits, mask the same size as the image), and
        the server's room for it (queue limits, free disk space)."""
        return _submit(lambda: form["request"], lambda _req: files)

    @blp.response(200, JobSchema(many=True))
    @blp.paginate()
    def get(self, pagination_parameters):
        """List your jobs, newest first"""
        services = _services()
        principal = g.principal
        with services.db.session() as s:
            query = select(Job)
            if not principal.is_admin:
                query = query.where(Job.owner == principal.owner)
            item_count = s.scalar(select(func.count()).select_from(query.subquery()))
            pagination_parameters.item_count = item_count
            jobs = list(
                s.scalars(
                    query.order_by(Job.created_at.desc())
                    .offset(min(pagination_parameters.first_item, item_count))
                    .limit(pagination_parameters.page_size)
                )
            )
        return [job_json(j) for j in jobs]


@blp.route("/jobs/raw")
class RawJobs(MethodView):
    decorators = [upload_slot]

    @blp.response(202, JobSchema)
    @blp.alt_response(400, description="Body shorter than its Content-Length")
    @_submission_responses
    @blp.alt_response(411, description="No Content-Length (`length_required`)")
    @blp.alt_response(413, description="Upload or image too large")
    @blp.alt_response(422, description="Invalid request or params, or a body that is not the "
                                        "declared pixels (`raw_size_mismatch`)")
    @blp.doc(
        requestBody={
            "required": True,
            "description": "The raw files `raw` declares, back to back in the order "
            + ", ".join(RAW_BODY_ORDER) + " (those declared), each exactly width × height × "
            "the bytes a pixel of its format takes (rgba8 4, rgba16 8, gray8 1)",
            "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}},
        },
        parameters=[
            {
                "in": "header",
                "name": "Aiedit-Request",
                "required": True,
                "schema": {"type": "string"},
                "description": "The job request JSON (as the `request` part of POST /v1/jobs, "
                "ASCII: escape other characters as \\uXXXX); its `raw` declares every file",
            },
            IDEMPOTENCY_KEY_HEADER,
        ],
    )
    def post(self):
        """Submit a job with raw pixels as the body

        The same job as POST /v1/jobs with every file raw, without multipart framing: the
        server reads the body straight into the files it stores (no parsing, one copy), which
        is what moves a large layer fastest. Everything is checked as for POST /v1/jobs, and
        the request JSON before the body is read."""
        text = request.headers.get("Aiedit-Request")
        if text is None:
            raise ApiError(422, "missing_request",
                           "send the job request JSON in the Aiedit-Request header")
        job_id = uuid.uuid4().hex  # the body streams into this job's folder
        try:
            job = _submit(lambda: text, lambda req: read_raw_body(req, job_id), job_id)
        except BaseException:
            _services().blobs.delete_job(job_id)  # refused: nothing of it stays
            raise
        if job["id"] != job_id:  # an earlier job with the same Idempotency-Key answered
            _services().blobs.delete_job(job_id)
        return job


def _submit(request_text, read_files, job_id: str | None = None) -> dict:
    """Submit a job: `request_text()` is the request JSON, `read_files(req)` the files (given
    the checked request, whose `raw` may say how to read them); `job_id` the new job's id
    when its files are stored under it as they are read."""
    services = _services()
    owner = g.principal.owner
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 200):
        raise ApiError(
            422, "invalid_idempotency_key", "Idempotency-Key must be 1 to 200 characters"
        )
    require_account(g.principal)
    existing = services.runner.find_idempotent(owner, key) if key else None
    if existing is None:
        check_capacity(owner, request.content_length)
    submission = read_submission(owner, request_text(), read_files, key, job_id)
    if existing is not None:
        if not same_request(existing, submission):
            raise reused_key_error(key)
        return job_json(existing)
    admit = admission(owner, g.principal.user, submission.new.cost,
                      job_id=submission.new.id, price=submission.price,
                      user_limits=g.principal.limits)
    try:
        job = services.runner.submit(submission.new, admit)
    except IntegrityError:  # the same Idempotency-Key raced in
        existing = services.runner.find_idempotent(owner, key)
        if existing is None:
            raise
        if not same_request(existing, submission):
            raise reused_key_error(key) from None
        return job_json(existing)
    except OSError as exc:
        current_app.logger.exception("could not store an upload")  # the path stays here
        raise ApiError(
            507,
            "insufficient_storage",
            f"the server could not store the upload ({exc.strerror or 'an I/O error'}); "
            "free space in its data directory and retry",
        ) from None
    if services.config.hosted:
        analytics.count(services.db, g.principal.user, job.operation)
    return job_json(job)


def _snapshot(body: dict):
    return body["state"], body["progress"], body["queue_position"]


@blp.route("/jobs/<job_id>")
class JobById(MethodView):
    @blp.arguments(WaitArgs, location="query")
    @blp.response(200, JobSchema)
    @blp.alt_response(429, description="Too many long-polls open (`too_many_long_polls`)")
    def get(self, args, job_id):
        """Get a job; with `wait`, return as soon as it changes (long-poll)"""
        body = job_json(_own_job_view(job_id))
        if args["wait"] <= 0 or body["state"] in FINISHED:
            return body
        with _long_polls().slot(g.principal.owner):
            return _wait_for_change(job_id, body, args["wait"])

    @blp.arguments(DeleteArgs, location="query")
    @blp.response(202, JobSchema)
    @blp.alt_response(204, description="A finished job was deleted with its files")
    def delete(self, args, job_id):
        """Cancel a queued or running job, or delete a finished one with its files"""
        services = _services()
        job = _own_job(job_id)
        if job.state in FINISHED and args["cancel_only"]:
            return job_json(job)
        if job.state in FINISHED:
            services.runner.delete(job_id)
            return Response(status=204)
        services.runner.cancel(job_id)
        return job_json(_own_job(job_id))


def _wait_for_change(job_id: str, body: dict, wait: float) -> dict:
    """Long-poll: the job as soon as its state changes, or its progress (at most every
    PROGRESS_EVERY_S; its queue position at most every QUEUE_EVERY_S), or when `wait` seconds
    have passed."""
    services = _services()
    started = time.monotonic()
    deadline = started + min(wait, services.config.max_wait_s)
    progress_due = started + (QUEUE_EVERY_S if body["state"] == QUEUED else PROGRESS_EVERY_S)
    before = _snapshot(body)
    version = services.events.version(job_id)
    while body["state"] not in FINISHED and body["state"] == before[0]:
        now = time.monotonic()
        changed = _snapshot(body) != before
        if now >= deadline or (changed and now >= progress_due):
            break
        # Nothing is answered before progress_due, so nothing is read before then: for a
        # queued job that is QUEUE_EVERY_S (its own change, a start or a cancel, still wakes
        # the wait at once); PROGRESS_EVERY_S is sooner than POLL_INTERVAL_S anyway.
        wake = progress_due if changed else max(progress_due, now + POLL_INTERVAL_S)
        timeout = min(deadline, wake) - now
        # once progress has changed, only a state change may cut the wait short
        version = services.events.wait(job_id, version, timeout, progress_counts=not changed)
        body = job_json(_own_job_view(job_id))
    return body


class _LongPolls:
    """Counts open long-polls, in total and per caller, and refuses one over either limit: a
    long-poll holds a server thread, and `max_long_polls` stays below half of them so health
    checks, submissions and downloads always find one."""

    def __init__(self, total: int, per_caller: int):
        self.total, self.per_caller = total, per_caller
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, caller: str):
        with self._lock:
            mine, everyone = self._open.get(caller, 0), sum(self._open.values())
            if mine >= self.per_caller or everyone >= self.total:
                raise ApiError(
                    429,
                    "too_many_long_polls",
                    f"{mine} long-polls (wait=...) are open for you and {everyone} in all; this "
                    f"server allows {self.per_caller} per caller and {self.total} in all "
                    "(max_long_polls_per_key, max_long_polls). Follow fewer jobs at once, or "
                    "poll without `wait` after Retry-After",
                    headers={"Retry-After": str(LONG_POLL_RETRY_S)},
                )
            self._open[caller] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._open[caller] - 1
                if left:
                    self._open[caller] = left
                else:
                    del self._open[caller]


_long_polls_lock = threading.Lock()


def _long_polls() -> _LongPolls:
    app = current_app._get_current_object()
    with _long_polls_lock:
        polls = app.extensions.get("aiedit-long-polls")
        if polls is None:
            polls = _LongPolls(*_services().config.long_poll_limits)
            app.extensions["aiedit-long-polls"] = polls
        return polls


@blp.route("/jobs/<job_id>/results/<int:index>")
@blp.arguments(ResultArgs, location="query")
@blp.doc(
    responses={
        "200": {
            "description": "The result",
            "content": {
                ct: {"schema": {"type": "string", "format": "binary"}}
                for ct in RESULT_CONTENT_TYPES
            },
        }
    }
)
@blp.alt_response(404, description="No such job or result")
@blp.alt_response(410, description="The result's file is gone")
@blp.alt_response(422, description="Format does not fit the result")
def get_result(args, job_id, index):
    """Download a result: PNG (default), raw RGBA (`format=rgba`, `format=rgba16`), JPEG, WebP,
    or MP4 for video

    PNG keeps the result's depth (a 16-bit PNG for a depth-16 result); `rgba` is always 8-bit
    and `rgba16` always 16-bit little-endian (8-bit results widened by x257); `X-Image-Depth`
    says which the body is."""
    services = _services()
    job = _own_job(job_id)
    results = job.results or []
    if not 0 <= index < len(results):
        raise ApiError(
            404,
            "result_not_found",
            f"job {job_id} has {len(results)} result(s); there is no result {index}"
            + ("" if job.state == "succeeded" else f" (the job is {job.state})"),
        )
    result = results[index]
    fmt = args["format"]
    headers = {
        "X-Image-Width": str(result["width"]),
        "X-Image-Height": str(result["height"]),
        "X-Offset-X": str(result["offset"]["x"]),
        "X-Offset-Y": str(result["offset"]["y"]),
        "Cache-Control": "private, max-age=3600",
    }
    path = services.blobs.path(job_id, result["blob"])
    if not path.is_file():
        raise ApiError(
            410,
            "result_gone",
            f"result {index} of job {job_id} is no longer stored on the server (its file was "
            "removed); run the job again",
        )
    if result["kind"] == "video":
        if fmt not in (None, "mp4"):
            raise ApiError(
                422,
                "format_not_available",
                f"result {index} is a video: ask for format=mp4 (its frames are the other results)",
            )
        return Response(path.read_bytes(), mimetype="video/mp4", headers=headers)
    if fmt == "mp4":
        raise ApiError(
            422, "format_not_available",
            f"result {index} is an image: use png, rgba, rgba16, jpeg or webp"
        )
    fmt = fmt or "png"
    if fmt == "webp" and max(result["width"], result["height"]) > WEBP_MAX_SIDE:
        raise ApiError(
            422,
            "format_not_available",
            f"result {index} is {result['width']}x{result['height']}: WebP holds at most "
            f"{WEBP_MAX_SIDE} pixels a side; ask for png or rgba",
        )
    try:
        pixels = services.blobs.get_array(job_id, result["blob"])
    except FileNotFoundError:  # deleted between the check above and now
        raise ApiError(
            410, "result_gone", f"result {index} of job {job_id} was just removed"
        ) from None
    depth = 16 if pixels.dtype.itemsize == 2 else 8
    wanted = {"rgba": 8, "rgba16": 16, "png": depth}.get(fmt, 8)
    headers["X-Image-Depth"] = str(wanted)
    if fmt in ("rgba", "rgba16"):
        if wanted == depth:
            return _stream_raw(services.blobs.path(job_id, result["blob"]), pixels, headers)
        convert = to_8bit if wanted == 8 else to_16bit
        body = np.ascontiguousarray(convert(np.asarray(pixels)), dtype="<u2" if wanted == 16
                                    else np.uint8)
        return Response(body.tobytes(), mimetype=IMAGE_FORMATS[fmt], headers=headers)
    return Response(encode(np.asarray(pixels), fmt), mimetype=IMAGE_FORMATS[fmt], headers=headers)


def _stream_raw(path, pixels, headers) -> Response:
    """Send the pixel bytes straight from the stored file: through the server's file wrapper
    (waitress sends from the file in blocks, without first copying the whole body into its
    output buffer, which costs as much as the transfer for a 64 MB layer)."""
    size = pixels.nbytes
    fh = open(path, "rb")  # noqa: SIM115 - the server closes it when the body is sent
    fh.seek(pixels.offset)
    headers = dict(headers, **{"Content-Length": str(size)})
    return Response(
        wrap_file(request.environ, fh, buffer_size=1 << 20),
        mimetype="application/octet-stream",
        headers=headers,
        direct_passthrough=True,
    )
