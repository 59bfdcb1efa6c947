"""The GIMP side of aiedit: read the region, run the job off the main thread, insert results.

libgimp is not thread-safe: every Gimp/Gegl call here runs on the main thread. Only the
network work (submit, long-poll, download) runs in a worker thread, which reports back
through a queue.
"""

import json
import os
import queue
import threading
from dataclasses import dataclass, field

import aiedit_client as ac
import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

RGBA = "R'G'B'A u8"
GRAY = "Y u8"
DEFAULT_MARGIN = 32
PROMPT_IN_NAME = 40

TITLES = {
    "generate": "Generate",
    "edit": "Edit",
    "inpaint": "Inpaint",
    "outpaint": "Outpaint",
    "upscale": "Upscale",
    "restore": "Restore",
    "video": "Video",
}
MASKED_OPERATIONS = ("inpaint", "edit")


# ---------------------------------------------------------------- settings


def settings_dir() -> str:
    return os.path.join(Gimp.directory(), "aiedit")


def load_settings() -> dict:
    """Server URL and API key shared by all procedures (``aiedit/settings.json``)."""
    try:
        with open(os.path.join(settings_dir(), "settings.json"), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_settings(**values) -> None:
    """Save settings; the file holds the API key, so it is created readable by the user only
    (0600 from the start, not chmod-ed after others could have opened it)."""
    settings = load_settings()
    settings.update(values)
    os.makedirs(settings_dir(), exist_ok=True)
    path = os.path.join(settings_dir(), "settings.json")
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except OSError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)
    os.replace(tmp, path)


def make_client(server_url: str = "", api_key: str = "") -> ac.Client:
    """A client for the given URL/key, or the saved settings where they are empty."""
    settings = load_settings()
    url = server_url or settings.get("server_url") or ac.DEFAULT_URL
    key = api_key or settings.get("api_key") or ""
    return ac.Client(url, key)


def journal() -> ac.JobJournal:
    return ac.JobJournal(os.path.join(settings_dir(), "pending.json"))


# ---------------------------------------------------------------- what to send


@dataclass
class Plan:
    """Everything a job needs, read from the image on the main thread."""

    operation: str
    model: str
    params: dict
    region: ac.Region
    image: "ac.Pixels | None" = None
    mask: "ac.Mask | None" = None
    prompt: str = ""
    options: dict = field(default_factory=dict)

    def submit_args(self) -> dict:
        return {"operation": self.operation, "image": self.image, "mask": self.mask,
                "region": self.region, "model": self.model, "params": self.params}


def selection_bounds(image):
    """(x1, y1, x2, y2) of the selection, x2/y2 exclusive, or None without a selection."""
    _ok, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    return (x1, y1, x2, y2) if non_empty else None


def drawable_region(drawable) -> ac.Region:
    _ok, x, y = drawable.get_offsets()
    return ac.Region(x, y, drawable.get_width(), drawable.get_height())


def image_region(image) -> ac.Region:
    return ac.Region(0, 0, image.get_width(), image.get_height())


def read_rgba(drawable, region: ac.Region) -> ac.Pixels:
    """8-bit RGBA of ``drawable`` inside ``region`` (image coordinates), whatever the image
    precision; transparent where the drawable does not reach."""
    _ok, ox, oy = drawable.get_offsets()
    rect = Gegl.Rectangle.new(region.x - ox, region.y - oy, region.width, region.height)
    data = drawable.get_buffer().get(rect, 1.0, RGBA, Gegl.AbyssPolicy.NONE)
    return ac.Pixels(region.width, region.height, bytes(data))


def read_selection_mask(image, region: ac.Region) -> ac.Mask:
    """The selection inside ``region`` as a soft 8-bit mask (255 = selected)."""
    rect = Gegl.Rectangle.new(region.x, region.y, region.width, region.height)
    data = image.get_selection().get_buffer().get(rect, 1.0, GRAY, Gegl.AbyssPolicy.NONE)
    return ac.Mask(region.width, region.height, bytes(data))


def read_source(image, drawable, region: ac.Region, source: str) -> ac.Pixels:
    """Pixels of the active layer, or of the visible image, inside ``region``."""
    if source != "visible":
        return read_rgba(drawable, region)
    visible = Gimp.Layer.new_from_visible(image, image, "aiedit visible")
    try:
        return read_rgba(visible, region)
    finally:
        visible.delete()


def sends_image(operation: dict) -> bool:
    """Whether the plug-in sends pixels: only when the operation requires them (generate's
    optional image is for refining, which the plug-in does not offer: it draws anew)."""
    return (operation.get("inputs") or {}).get("image") == "required"


def plan_job(operation: dict, image, drawable, prompt: str, model: str, params: dict,
             source: str = "layer", margin: int = DEFAULT_MARGIN) -> Plan:
    """Decide region, image and mask for ``operation`` (a ``/v1/operations`` entry).

    ``drawable`` is the active layer (a layer group reads as what it shows) or None when no
    layer is selected: then only what needs no layer runs (generate, or pixels from the
    visible image), and anything else says what to select."""
    op_id = operation["id"]
    inputs = operation.get("inputs") or {}
    params = dict(params)
    if prompt and "prompt" in _schema_properties(operation):
        params["prompt"] = prompt
    needs_layer = sends_image(operation) or operation.get("region") == "layer"
    if drawable is None and source != "visible" and needs_layer:
        raise ac.AieditError(
            f"{TITLES.get(op_id, op_id)} works on a layer and no layer is selected: select one "
            "in the Layers panel, or send the visible image instead (Pixels from: Visible "
            "image)", "no_layer")
    bounds = selection_bounds(image)
    if source == "visible" or drawable is None:
        whole = image_region(image)
    else:
        whole = drawable_region(drawable)
    if inputs.get("mask") == "required" and bounds is None:
        raise ac.AieditError(f"{TITLES.get(op_id, op_id)} needs a selection: select the area "
                             "to change first", "no_selection")
    if operation.get("region") == "layer":
        region = whole
    elif bounds is None:
        region = whole
    elif not sends_image(operation):
        region = ac.Region(bounds[0], bounds[1], bounds[2] - bounds[0], bounds[3] - bounds[1])
    else:
        region = ac.grow_region(*bounds, margin, image.get_width(), image.get_height())
    plan = Plan(op_id, model, params, region, prompt=prompt)
    if sends_image(operation):
        plan.image = read_source(image, drawable, region, source)
    if bounds is not None and inputs.get("mask", "unused") != "unused":
        plan.mask = read_selection_mask(image, region)
    if op_id == "generate":
        _default_generate_size(plan, operation)
    return plan


def _default_generate_size(plan: Plan, operation: dict) -> None:
    props = _schema_properties(operation)
    for name, size in (("width", plan.region.width), ("height", plan.region.height)):
        if name in props and name not in plan.params:
            plan.params[name] = _fit_to_schema(size, props[name])


def _fit_to_schema(value: int, schema: dict) -> int:
    step = int(schema.get("multipleOf") or 1)
    value = value // step * step
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None:
        value = max(value, int(low))
    if high is not None:
        value = min(value, int(high))
    return value


def _schema_properties(operation: dict) -> dict:
    return (operation.get("params_schema") or {}).get("properties") or {}


# ---------------------------------------------------------------- running the job


@dataclass
class Outcome:
    job: dict
    images: list  # [(Result, Pixels)] image results, in index order


class GimpProgress:
    """GIMP's progress bar: stage text, queue position, step fraction."""

    def __init__(self, title: str):
        Gimp.progress_init(title)
        self.queued = True

    def show(self, job: dict) -> None:
        Gimp.progress_set_text(ac.describe_progress(job))
        self.queued = job.get("state") == "queued"
        if not self.queued:
            Gimp.progress_update(ac.progress_fraction(job))

    def tick(self) -> None:
        if self.queued:
            Gimp.progress_pulse()


def execute(client: ac.Client, plan: Plan, progress, record: bool = True,
            watchdog: bool = True) -> Outcome:
    """Submit, follow and download the job in a worker thread; handle its events here, on the
    main thread. A journal entry lets a later run recover the results if GIMP kills us; a
    watchdog process cancels the job on the server if we die before it ends."""
    events: queue.Queue = queue.Queue()
    pending = journal() if record else None
    worker = threading.Thread(target=_work, args=(client, plan, events, pending, watchdog),
                              name="aiedit-job", daemon=True)
    worker.start()
    while True:
        try:
            kind, payload = events.get(timeout=0.1)
        except queue.Empty:
            progress.tick()
            continue
        if kind == "progress":
            progress.show(payload)
        elif kind == "done":
            return payload
        else:
            raise payload


def _work(client: ac.Client, plan: Plan, events: queue.Queue,
          pending: "ac.JobJournal | None", watchdog: bool) -> None:
    """The worker thread: network and files only, never a Gimp call."""
    guard = None
    try:
        job = client.submit(**plan.submit_args())
        events.put(("progress", job))
        if pending is not None:
            pending.add(job["id"], server_url=client.url, operation=plan.operation,
                        prompt=plan.prompt, region=plan.region.as_json(), options=plan.options)
        if watchdog:
            guard = ac.CancelWatchdog(client, job["id"])
        job = client.wait(job["id"], on_progress=lambda j: events.put(("progress", j)))
        events.put(("done", Outcome(job, download_images(client, job))))
    except BaseException as error:  # noqa: BLE001 - handed to the main thread
        if pending is not None and isinstance(error, (ac.JobFailed, ac.JobCanceled)):
            pending.remove(error.job.get("id", ""))
        events.put(("error", error))
    finally:
        if guard is not None:
            guard.done()


def download_images(client: ac.Client, job: dict) -> list:
    return [(r, client.fetch_pixels(r)) for r in client.results(job) if r.kind == "image"]


# ---------------------------------------------------------------- inserting results


def layer_type(image):
    if image.get_base_type() == Gimp.ImageBaseType.GRAY:
        return Gimp.ImageType.GRAYA_IMAGE
    return Gimp.ImageType.RGBA_IMAGE


def layer_name(operation: str, prompt: str, seed) -> str:
    name = TITLES.get(operation, operation.title())
    prompt = " ".join((prompt or "").split())
    if prompt:
        name += ": " + (prompt if len(prompt) <= PROMPT_IN_NAME
                        else prompt[:PROMPT_IN_NAME - 1] + "…")
    if seed is not None:
        name += f" (seed {seed})"
    return name


def frame_name(number: int, fps: float) -> str:
    """GIMP's animation-export name for frame ``number`` (1-based)."""
    return f"Frame {number} ({max(1, round(1000 / fps))}ms) (replace)"


def anchor_layer(image, drawables):
    """The layer results go above: the active layer (or the owner of an active layer mask)."""
    for drawable in drawables or image.get_selected_layers() or []:
        if isinstance(drawable, Gimp.LayerMask):
            return Gimp.Layer.from_mask(drawable)
        if isinstance(drawable, Gimp.Layer):
            return drawable
    return None


def add_layer(image, anchor, name: str, pixels: ac.Pixels, x: int, y: int):
    """A new layer with ``pixels`` at (x, y), directly above ``anchor`` (or on top)."""
    layer = Gimp.Layer.new(image, name, pixels.width, pixels.height, layer_type(image), 100.0,
                           Gimp.LayerMode.NORMAL)
    if anchor is not None:
        image.insert_layer(layer, anchor.get_parent(), image.get_item_position(anchor))
    else:
        image.insert_layer(layer, None, 0)
    layer.set_offsets(x, y)
    write_buffer(layer, pixels.data, pixels.width, pixels.height, RGBA)
    return layer


def write_buffer(drawable, data: bytes, width: int, height: int, fmt: str) -> None:
    buffer = drawable.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, width, height), fmt, data)
    buffer.flush()
    drawable.update(0, 0, width, height)


def add_mask(layer, mask: "ac.Mask | None") -> None:
    """Mask the layer with the selection as it was when the job was sent."""
    if mask is not None and (mask.width, mask.height) == (layer.get_width(), layer.get_height()):
        layer_mask = layer.create_mask(Gimp.AddMaskType.WHITE)
        layer.add_mask(layer_mask)
        write_buffer(layer_mask, mask.data, mask.width, mask.height, GRAY)
    else:
        layer.add_mask(layer.create_mask(Gimp.AddMaskType.SELECTION))


def insert_results(image, anchor, plan: Plan, outcome: Outcome, interactive: bool = False):
    """Put the results into GIMP; returns the new layers (or, for upscale into a new image,
    that image's layer)."""
    images = outcome.images
    if not images:
        raise ac.AieditError("The job finished without an image result", "no_result")
    if plan.operation == "upscale" and plan.options.get("upscale_into", "new-image") != "resize":
        return [upscale_into_new_image(plan, images[0], interactive)]
    image.undo_group_start()
    try:
        if plan.operation == "video":
            return insert_frames(image, anchor, images, video_fps(plan))
        if plan.operation == "upscale":
            resize_for_result(image, plan, images[0][0])
        if plan.operation == "outpaint":
            grow_canvas(image, [r for r, _ in images])
        layers = []
        for result, pixels in images:
            name = layer_name(plan.operation, plan.prompt, result.seed)
            layer = add_layer(image, anchor, name, pixels, result.x, result.y)
            if plan.operation in MASKED_OPERATIONS and plan.mask is not None:
                add_mask(layer, plan.mask)
            layers.append(layer)
        return layers
    finally:
        image.undo_group_end()


def insert_frames(image, anchor, images: list, fps: float) -> list:
    """One layer per frame, first frame lowest, named for GIMP's animation export."""
    layers = []
    for number, (result, pixels) in enumerate(images, start=1):
        anchor = add_layer(image, anchor, frame_name(number, fps), pixels, result.x, result.y)
        layers.append(anchor)
    return layers


def video_fps(plan: Plan) -> float:
    fps = plan.params.get("fps") or plan.options.get("default_fps") or 8
    return float(fps)


def resize_for_result(image, plan: Plan, result: ac.Result) -> None:
    """Scale the whole image by the upscale factor so the result fits at its offset."""
    factor = result.width / plan.region.width
    image.scale(round(image.get_width() * factor), round(image.get_height() * factor))


def grow_canvas(image, results: list) -> None:
    """Enlarge the canvas to hold results that reach past it (outpaint); results placed
    later are shifted by the same amount."""
    left = min([0] + [r.x for r in results])
    top = min([0] + [r.y for r in results])
    right = max([image.get_width()] + [r.x + r.width for r in results])
    bottom = max([image.get_height()] + [r.y + r.height for r in results])
    if (left, top, right, bottom) != (0, 0, image.get_width(), image.get_height()):
        image.resize(right - left, bottom - top, -left, -top)
        for r in results:
            r.x -= left
            r.y -= top


def upscale_into_new_image(plan: Plan, item, interactive: bool):
    result, pixels = item
    new_image = Gimp.Image.new(pixels.width, pixels.height, Gimp.ImageBaseType.RGB)
    add_layer(new_image, None, layer_name("upscale", "", result.seed), pixels, 0, 0)
    if interactive:
        Gimp.Display.new(new_image)
    return new_image


# ---------------------------------------------------------------- results from earlier runs


def finished_earlier(client: ac.Client) -> list:
    """Journal entries of this server whose jobs succeeded after an earlier run died, with
    their final job JSON; entries of failed, canceled or vanished jobs are dropped."""
    found = []
    pending = journal()
    for entry in pending.entries():
        if entry.get("server_url") != client.url:
            continue
        try:
            job = client.job(entry["job_id"])
        except ac.ConnectionFailed:
            return found
        except ac.AieditError:
            pending.remove(entry["job_id"])
            continue
        if job.get("state") == "succeeded":
            found.append((entry, job))
        elif job.get("state") in ("failed", "canceled"):
            pending.remove(entry["job_id"])
    return found


def insert_recovered(client: ac.Client, image, anchor, entry: dict, job: dict,
                     interactive: bool):
    """Insert the results of a job an earlier run did not live to insert."""
    region = ac.Region(**entry["region"])
    plan = Plan(entry["operation"], "", {}, region, prompt=entry.get("prompt", ""),
                options=entry.get("options") or {})
    layers = insert_results(image, anchor, plan, Outcome(job, download_images(client, job)),
                            interactive)
    journal().remove(entry["job_id"])
    return layers


# ---------------------------------------------------------------- dialog fields from the schema


def param_fields(operation: dict, previous: dict) -> list:
    """Form fields for the operation's parameters, built from its JSON schema.

    The prompt is left out (it is a procedure argument of its own). Each field is a dict:
    name, label, kind (choice | toggle | number | text), value, choices, minimum, maximum,
    integer, optional, help.
    """
    schema = operation.get("params_schema") or {}
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        kind_type = _json_type(prop)
        if name == "prompt" or prop.get("readOnly") or kind_type in ("array", "object"):
            continue  # lists and objects (control layers) have no dialog widget
        if prop.get("enum"):
            kind = "choice"
        elif kind_type == "boolean":
            kind = "toggle"
        elif kind_type in ("integer", "number"):
            kind = "number"
        else:
            kind = "text"
        fields.append({
            "name": name,
            "label": prop.get("title") or name.replace("_", " ").capitalize(),
            "kind": kind,
            "value": previous.get(name, prop.get("default")),
            "choices": [str(c) for c in prop.get("enum") or []],
            "minimum": prop.get("minimum"),
            "maximum": prop.get("maximum"),
            "integer": kind_type == "integer",
            "optional": prop.get("nullable") is True or "null" in _types(prop)
            or (name not in required and prop.get("default") is None),
            "help": prop.get("description") or "",
        })
    return fields


def collect_params(fields: list, values: dict) -> dict:
    """Typed parameters from the dialog's raw values; empty optional fields are left out so
    the server applies its own default (a random seed, for example)."""
    params = {}
    for f in fields:
        raw = values.get(f["name"])
        if f["kind"] == "toggle":
            params[f["name"]] = bool(raw)
            continue
        text = "" if raw is None else str(raw).strip()
        if text == "":
            if not f["optional"] and f["kind"] != "text":
                raise ac.AieditError(f"{f['label']}: enter a value", "bad_param")
            if f["kind"] == "text" and not f["optional"]:
                params[f["name"]] = ""
            continue
        params[f["name"]] = _typed(f, text)
    return params


def _typed(f: dict, text: str):
    if f["kind"] != "number":
        return text
    try:
        number = float(text)
    except ValueError:
        raise ac.AieditError(f"{f['label']}: '{text}' is not a number", "bad_param") from None
    if f["integer"]:
        if number != int(number):
            raise ac.AieditError(f"{f['label']}: enter a whole number", "bad_param")
        return int(number)
    return number


def _types(prop: dict) -> list:
    kind = prop.get("type")
    return kind if isinstance(kind, list) else [kind]


def _json_type(prop: dict) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None:
        for option in prop.get("anyOf") or prop.get("oneOf") or []:
            if option.get("type") not in (None, "null"):
                return option["type"]
    return kind or "string"
