"""One job from submission to downloaded results. Network only: no Qt widgets, no Krita calls,
so it runs on a worker thread (the docker) or inline (``aiedit.run``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from . import aiedit_client as ac
from . import pixels as px
from .aiedit_client import Client, Result
from .host import DEFAULT_MARGIN, Capture, encode_result, result_mask


@dataclass
class JobSpec:
    """Everything needed to submit one job; the capture was read on the GUI thread."""

    operation: str
    model: str
    params: dict
    capture: Capture
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    style: str = ""

    @property
    def prompt(self) -> str:
        return str(self.params.get("prompt") or "")


@dataclass
class Outcome:
    """A finished job and its downloaded results."""

    job: dict
    images: list = field(default_factory=list)   # [(Result, Pixels)]
    raws: dict = field(default_factory=dict)     # result index -> sRGB BGRA at the doc's depth
    masks: dict = field(default_factory=dict)    # result index -> (Mask, mask layer Raw)
    frames: list = field(default_factory=list)   # PNG bytes of video frames, in order
    fps: int = 24

    @property
    def is_video(self) -> bool:
        return bool(self.frames)


def execute(client: Client, spec: JobSpec, on_progress=None, should_cancel=None,
            on_submitted=None, on_preview=None) -> Outcome:
    """Submit ``spec``, wait for the job (reporting progress, honouring cancel) and download its
    results. Raises the client's ``AieditError`` subclasses with sentences a person can act on.

    Pixel conversion (the capture's sRGB BGRA to RGBA, results back) happens here, so on the
    worker thread when the docker runs it. ``on_submitted(job)`` is called once the server has
    the job (the docker journals it then), ``on_preview(preview)`` with each step preview of a
    diffusion job (PNG, from the event stream)."""
    job = submit(client, spec)
    if on_submitted:
        on_submitted(job)
    if on_progress:
        on_progress(job)
    job = client.wait(job["id"], on_progress=on_progress, should_cancel=should_cancel,
                      on_preview=on_preview)
    return download(client, job, spec)


def submit(client: Client, spec: JobSpec) -> dict:
    """``POST /v1/jobs``. The shared client's ``submit`` sends image, mask and reference; a job
    with control layers or a style goes through the same client's request plumbing here, with
    control parts ``control0``… beside the image."""
    capture = spec.capture
    if not capture.controls and not spec.style:
        return client.submit(spec.operation, image=capture.image, mask=capture.mask,
                             region=capture.region, model=spec.model, params=spec.params,
                             idempotency_key=spec.idempotency_key)
    params = dict(spec.params)
    if capture.controls:
        params["control"] = [item for item, _ in capture.controls]
    request = {"operation": spec.operation, "params": params,
               "region": capture.region.as_json()}
    if spec.model:
        request["model"] = spec.model
    if spec.style:
        request["style"] = spec.style
    image = capture.image
    if image is not None and getattr(image, "depth", 8) == 16 \
            and not client.takes_16bit(spec.operation):
        image = image.to_8bit()
    parts = [("image", image), ("mask", capture.mask)]
    parts += [(item["input"], ac.Pixels(raw.width, raw.height, px.to_rgba8(raw.data, raw.depth)))
              for item, raw in capture.controls]
    files, raw_parts = [], {}
    for name, value in parts:
        if value is None:
            continue
        files.append((name, value.data))
        raw_parts[name] = {"width": value.width, "height": value.height}
        if getattr(value, "depth", 8) == 16:
            raw_parts[name]["format"] = "rgba16"
    request["raw"] = raw_parts
    body, content_type = ac._multipart([("request", json.dumps(request).encode())], files)
    headers = {"Content-Type": content_type, "Idempotency-Key": spec.idempotency_key}
    return client._retrying(lambda: client._json("POST", "/v1/jobs", body, headers))


def download(client: Client, job: dict, spec: JobSpec) -> Outcome:
    results = client.results(job)
    outcome = Outcome(job, fps=int(spec.params.get("fps") or 24))
    if any(r.kind == "video" for r in results):
        outcome.frames = [client.fetch_bytes(r) for r in results if r.kind == "image"]
        return outcome
    outcome.images = [(r, client.fetch_pixels(r)) for r in results if r.kind == "image"]
    outcome.raws = {r.index: encode_result(pixels, spec.capture.layout)
                    for r, pixels in outcome.images}
    for r, pixels in outcome.images:
        masked = result_mask(spec.capture, spec.operation, r.x, r.y, pixels.width, pixels.height)
        if masked is not None:
            outcome.masks[r.index] = masked
    return outcome


def schema_properties(operation: dict) -> dict:
    """The operation's parameters: name -> JSON Schema."""
    return (operation.get("params_schema") or {}).get("properties") or {}


def default_params(operation: dict) -> dict:
    """Defaults the server publishes for the operation's parameters (None ones left out)."""
    return {name: prop["default"] for name, prop in schema_properties(operation).items()
            if prop.get("default") is not None}


def context_margin(operation: dict, params: dict) -> int:
    """How far the region reaches beyond the selection: the ``context_margin`` parameter when
    the operation has one, else a plugin default."""
    if "context_margin" in params and params["context_margin"] is not None:
        return int(params["context_margin"])
    return int(default_params(operation).get("context_margin", DEFAULT_MARGIN))


def pick_model(operation: dict, requested: str = "", styled: bool = False) -> str:
    """The requested model, else (with a style: the style's own) the server's default, else the
    first installed one."""
    if requested or styled:
        return requested
    if operation.get("default_model"):
        return operation["default_model"]
    installed = [m["id"] for m in operation.get("models") or [] if m.get("installed")]
    return installed[0] if installed else ""


def result_seed(result: Result, job: dict):
    if result.seed is not None:
        return result.seed
    return (job.get("params") or {}).get("seed")

