"""A job's pushed events (Server-Sent Events) and its latest step preview.

`GET /v1/jobs/{id}/events` streams `progress` events (step, total, stage, queue position) and
`preview` events (a new step preview is at `/v1/jobs/{id}/preview`) while the job waits and
runs, then one `state` event with the finished job, and ends. A stream holds a server thread as
a long-poll does, so it takes one of the same long-poll slots (429 `too_many_long_polls` when
none is free); a comment line every HEARTBEAT_S keeps proxies from closing it and finds out when
the client has gone."""

from __future__ import annotations

import json
import time

from flask import Response, current_app, g, request, stream_with_context
from flask_smorest import Blueprint

from aiedit.api.errors import ApiError
from aiedit.api.jobs import _long_polls, _own_job, job_json, job_view
from aiedit.jobs.runner import FINISHED, RUNNING
from aiedit.store.models import Job

blp = Blueprint("job-events", __name__, url_prefix="/v1", description="Follow a running job")

HEARTBEAT_S = 15.0
POLL_INTERVAL_S = 0.5  # changes made by other processes are seen by re-reading this often
RETRY_MS = 2000  # how long an EventSource waits before it reconnects after the stream ends


def _services():
    return current_app.extensions["aiedit"]


@blp.route("/jobs/<job_id>/events")
@blp.doc(
    responses={
        "200": {
            "description": "Server-Sent Events: `progress` {state, step, total, fraction, stage, "
            "eta_s, queue_position}, `preview` {step, url}, then one `state` event with the "
            "finished job (as GET /v1/jobs/{id}); lines starting with `:` are heartbeats",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }
)
@blp.alt_response(404, description="No such job")
@blp.alt_response(429, description="Too many long-polls and event streams open")
def job_events(job_id):
    """Follow a job as Server-Sent Events until it finishes"""
    services = _services()
    job = _own_job(job_id)
    owner = g.principal.owner
    slot = _long_polls().slot(owner)
    slot.__enter__()  # released when the stream ends, however it ends
    try:
        stream = _stream(services, job, request.environ)
        response = Response(stream_with_context(stream), mimetype="text/event-stream")
    except BaseException:
        slot.__exit__(None, None, None)
        raise
    response.call_on_close(lambda: slot.__exit__(None, None, None))
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


def _stream(services, job: Job, environ):
    """The events of one job; reads the job again whenever it changes (or every
    POLL_INTERVAL_S, for changes made in another process)."""
    job_id = job.id
    disconnected = environ.get("waitress.client_disconnected")  # with channel_request_lookahead
    deadline = time.monotonic() + services.config.max_event_stream_s
    sent_progress = None
    sent_preview = None
    last_write = time.monotonic()
    body = job_json(job)
    version = services.events.version(job_id)
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        progress = {
            "state": body["state"],
            **body["progress"],
            "queue_position": body["queue_position"],
        }
        if progress != sent_progress and body["state"] not in FINISHED:
            sent_progress = progress
            last_write = time.monotonic()
            yield _event("progress", progress)
        step = services.runner.preview_step(job_id)
        if step is not None and step != sent_preview:
            sent_preview = step
            last_write = time.monotonic()
            yield _event("preview", {"step": step, "url": f"/v1/jobs/{job_id}/preview"})
        if body["state"] in FINISHED:
            yield _event("state", body)
            return
        now = time.monotonic()
        if now >= deadline:  # the client reconnects (EventSource does by itself)
            return
        if disconnected is not None and disconnected():
            return
        if now - last_write >= HEARTBEAT_S:
            last_write = now
            yield ": heartbeat\n\n"
        before = version
        version = services.events.wait(job_id, version, POLL_INTERVAL_S)
        if version[1] == before[1] and body["state"] == RUNNING:
            live = services.runner.live_progress(job_id)
            if live is not None:  # progress only: fresh from memory, no database read
                body = _with_progress(body, live)
                continue
        job = job_view(services, job_id)
        if job is None:  # deleted meanwhile
            yield _event("state", {**body, "state": "deleted"})
            return
        body = job_json(job)


def _with_progress(body: dict, live: dict) -> dict:
    step, total = int(live.get("step") or 0), int(live.get("total") or 0)
    progress = {
        "step": step,
        "total": total,
        "fraction": round(min(1.0, step / total), 4) if total else 0.0,
        "stage": live.get("stage", body["state"]),
        "eta_s": live.get("eta_s"),
    }
    return {**body, "progress": progress}


@blp.route("/jobs/<job_id>/preview")
@blp.doc(
    responses={
        "200": {
            "description": "The latest step preview (PNG, at most 256 pixels a side); "
            "`X-Preview-Step` names its step",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
)
@blp.alt_response(404, description="No such job, or no preview (yet)")
def job_preview(job_id):
    """The latest low-resolution preview of a running diffusion job"""
    job = _own_job(job_id)
    preview = _services().runner.preview(job_id)
    if preview is None:
        raise ApiError(
            404,
            "preview_not_available",
            f"job {job_id} has no preview "
            + ("yet; previews come every few steps while it denoises" if job.state not in FINISHED
               else f"(it is {job.state}; its results are at /v1/jobs/{job_id}/results/0)"),
        )
    step, png = preview
    return Response(png, mimetype="image/png",
                    headers={"X-Preview-Step": str(step), "Cache-Control": "no-store"})
