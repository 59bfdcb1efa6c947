"""The scripting entry point (``aiedit.run``) and the one function that turns a finished job into
layers, shared with the docker's Apply."""

from __future__ import annotations

from . import host, jobs, settings
from .aiedit_client import Client, Pixels, Result

UPSCALING_OPERATIONS = ("upscale",)


def run(document, operation: str, prompt: str = "", model: str = "", params: dict | None = None,
        server_url: str | None = None, api_key: str | None = None, *,
        source: str = host.SOURCE_IMAGE, node=None, timeout: float = 30.0,
        controls: list | None = None, style: str = "") -> list:
    """Run one job on ``document``'s selection (or the whole image) and return the new nodes.

    Synchronous: it blocks until the job ends, so call it from scripts and batch runs, not from
    a docker. ``server_url`` / ``api_key`` default to the docker's settings. ``source`` is
    ``"image"`` (the visible image) or ``"layer"`` (the active layer, or ``node``). Upscale
    results open as a new document; the nodes returned then belong to it. ``controls``:
    control layers, ``[{"layer": name (or "node": node), "kind": "canny", "strength": 0.8}]``
    (kinds: scribble, lineart, canny, depth, pose, reference); ``style``: a ``/v1/styles`` id.
    """
    saved = settings.load()
    client = Client(server_url or saved.server_url,
                    saved.api_key if api_key is None else api_key, timeout=timeout)
    op = client.operation(operation)
    spec = prepare(document, op, prompt, model, params, source, node, controls, style)
    outcome = jobs.execute(client, spec)
    return apply_outcome(document, spec, outcome)


def prepare(document, op: dict, prompt: str = "", model: str = "", params: dict | None = None,
            source: str = host.SOURCE_IMAGE, node=None, controls: list | None = None,
            style: str = "") -> jobs.JobSpec:
    """Read what the job needs from the document (GUI thread) and describe the job."""
    params = dict(params or {})
    if prompt:
        params["prompt"] = prompt
    margin = jobs.context_margin(op, params)
    capture = host.read_capture(document, op, source, margin, node)
    capture.deep = "rgba16" in (op.get("input_formats") or [])
    if controls:
        host.read_controls(document, capture, controls)
    return jobs.JobSpec(op["id"], jobs.pick_model(op, model, bool(style)), params, capture,
                        style=style)


def apply_outcome(document, spec: jobs.JobSpec, outcome: jobs.Outcome,
                  force: bool = False) -> list:
    """Insert every result of ``outcome`` (GUI thread); returns the new nodes.

    Raises ``host.DocumentClosed`` or ``host.CanvasChanged`` (unless ``force``: then results go
    at their old position) when the document is gone or its canvas changed meanwhile."""
    document = host.check_document(spec.capture) if spec.capture.placement else document
    if outcome.is_video:
        name = host.layer_name(spec.operation, spec.prompt, _job_seed(outcome.job))
        node = host.insert_animation(document, spec.capture, outcome.frames, outcome.fps, name)
        return [node] if node is not None else []
    return [apply_image(document, spec, outcome.job, result, pixels,
                        outcome.raws.get(result.index), force, outcome.masks.get(result.index))
            for result, pixels in outcome.images]


def apply_image(document, spec: jobs.JobSpec, job: dict, result: Result, pixels: Pixels,
                raw=None, force: bool = False, masked=None):
    """Insert one image result: a new layer, or a new document for upscales."""
    name = host.layer_name(spec.operation, spec.prompt, jobs.result_seed(result, job),
                           job.get("model") or spec.model)
    if spec.operation in UPSCALING_OPERATIONS:
        _, node = host.new_document_for(document, pixels, name, spec.capture, raw)
        return node
    return host.insert_image(document, spec.capture, spec.operation, result, pixels, name,
                             raw, force, masked)


def open_as_new_document(spec: jobs.JobSpec, job: dict, result: Result, pixels: Pixels,
                         raw=None):
    """A result whose document was closed, as a new image in the same colour space."""
    name = host.layer_name(spec.operation, spec.prompt, jobs.result_seed(result, job),
                           job.get("model") or spec.model)
    _, node = host.new_document_for(None, pixels, name, spec.capture, raw)
    return node


def _job_seed(job: dict):
    for result in job.get("results") or []:
        if result.get("seed") is not None:
            return result["seed"]
    return (job.get("params") or {}).get("seed")
