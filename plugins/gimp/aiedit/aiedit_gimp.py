"""The GIMP side of aiedit: read the region, run the job off the main thread, insert results.

libgimp is not thread-safe: every Gimp/Gegl call here runs on the main thread. Only the
network work (submit, long-poll, download) runs in a worker thread, which reports back
through a queue.
"""

import dataclasses
import json
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import aiedit_client as ac
import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

RGBA = "R'G'B'A u8"
RGBA16 = "R'G'B'A u16"
GRAY = "Y u8"
# Named babl formats are sRGB: GEGL converts between them and the image's own colour space
# (its profile) on every get and set, so the server always sees sRGB and results land in the
# image's profile and precision. 16-bit buffers are native-endian, little-endian here as the
# server's raw ``rgba16`` format wants.
GEOMETRY_PARASITE = "aiedit-geometry"
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
    "preprocess": "Control map",
}
MASKED_OPERATIONS = ("inpaint", "edit")
SELECTION_RESULTS = ("generate", "inpaint", "edit")  # results masked by the selection


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


def account_url(server_url: str, page: str) -> str:
    """The server's account page ``/account/<page>`` (keys, credits) for the browser."""
    return ac.Client(server_url).url + "/account/" + page


def journal() -> ac.JobJournal:
    return ac.JobJournal(os.path.join(settings_dir(), "pending.json"))


def mask_path(job_id: str, folder: str = "") -> str:
    """Where a job's selection mask is kept (``folder``: the settings folder, for callers
    off the main thread, where Gimp may not be called)."""
    return os.path.join(folder or settings_dir(), "masks",
                        "".join(c for c in job_id if c.isalnum()) + ".gray")


def save_mask(job_id: str, mask: "ac.Mask | None", folder: str):
    """Keep a job's selection mask beside the journal, so results inserted after a restart
    get the same layer mask; returns its size for the journal entry (None without one)."""
    if mask is None:
        return None
    path = mask_path(job_id, folder)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(mask.data)
    return {"width": mask.width, "height": mask.height}


def load_mask(entry: dict) -> "ac.Mask | None":
    size = entry.get("mask")
    if not size:
        return None
    try:
        with open(mask_path(entry["job_id"]), "rb") as f:
            return ac.Mask(size["width"], size["height"], f.read())
    except (OSError, ValueError, KeyError):
        return None


def forget(job_id: str, pending: "ac.JobJournal | None" = None) -> None:
    """The job is handled (applied, discarded, failed): out of the journal, mask deleted.
    Off the main thread, pass the journal (``journal()`` asks Gimp for its folder)."""
    pending = pending or journal()
    pending.remove(job_id)
    try:
        os.unlink(mask_path(job_id, os.path.dirname(pending.path)))
    except OSError:
        pass


# ---------------------------------------------------------------- last values and history

HISTORY_SIZE = 50


def _read_json(name: str, default):
    try:
        with open(os.path.join(settings_dir(), name), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, type(default)) else default
    except (OSError, ValueError):
        return default


def _write_json(name: str, data) -> None:
    os.makedirs(settings_dir(), exist_ok=True)
    path = os.path.join(settings_dir(), name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def load_last_values(op_id: str) -> dict:
    """The model, prompt and parameters last confirmed in this operation's dialog."""
    value = _read_json("last-values.json", {}).get(op_id)
    return value if isinstance(value, dict) else {}


def save_last_values(op_id: str, values: dict) -> None:
    data = _read_json("last-values.json", {})
    data[op_id] = values
    _write_json("last-values.json", data)


def history() -> list:
    """This profile's recent jobs, oldest first: operation, prompt, model, params, the
    results' seeds, when, and what became of the results (applied, kept, discarded)."""
    return [e for e in _read_json("history.json", []) if isinstance(e, dict)]


def record_history(plan: "Plan", job: dict, state: str = "") -> None:
    entries = [e for e in history() if e.get("job_id") != job.get("id")]
    seeds = [r.get("seed") for r in job.get("results") or []]
    params = {k: v for k, v in plan.params.items() if k != "control"}
    entries.append({"job_id": job.get("id"), "operation": plan.operation, "prompt": plan.prompt,
                    "model": plan.model or job.get("model") or "", "params": params,
                    "seeds": seeds, "style": plan.style, "state": state, "time": time.time()})
    _write_json("history.json", entries[-HISTORY_SIZE:])


def set_history_state(job_id: str, state: str) -> None:
    entries = history()
    for entry in entries:
        if entry.get("job_id") == job_id:
            entry["state"] = state
    _write_json("history.json", entries)


def history_label(entry: dict) -> str:
    when = time.strftime("%H:%M", time.localtime(entry.get("time") or 0))
    seeds = [s for s in entry.get("seeds") or [] if s is not None]
    text = when
    if seeds:
        text += f" seed {seeds[0]}"
    if len(seeds) > 1:
        text += f" (+{len(seeds) - 1})"
    prompt = " ".join((entry.get("prompt") or "").split())
    if prompt:
        text += " — " + (prompt if len(prompt) <= 50 else prompt[:49] + "…")
    if entry.get("state"):
        text += f" [{entry['state']}]"
    return text


def settings_again(entry: dict, variation: int = 0) -> dict:
    """The parameters to run an earlier job again: its own, with the seed its result
    ``variation`` was made with (so the same picture comes back)."""
    params = dict(entry.get("params") or {})
    seeds = entry.get("seeds") or []
    if variation < len(seeds) and seeds[variation] is not None:
        params["seed"] = seeds[variation]
    return params


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
    geometry: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)  # control0... -> Pixels (control layers)
    style: str = ""
    layer_mask: "ac.Mask | None" = None  # the selection over the region, for the results

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


def read_rgba(drawable, region: ac.Region, depth: int = 8) -> ac.Pixels:
    """sRGB RGBA of ``drawable`` inside ``region`` (image coordinates), 8 or 16 bits a
    channel, converted by GEGL from the image's profile and precision in one bulk read;
    transparent where the drawable does not reach."""
    _ok, ox, oy = drawable.get_offsets()
    rect = Gegl.Rectangle.new(region.x - ox, region.y - oy, region.width, region.height)
    data = drawable.get_buffer().get(rect, 1.0, RGBA16 if depth == 16 else RGBA,
                                     Gegl.AbyssPolicy.NONE)
    return make_pixels(region.width, region.height, bytes(data), depth)


def make_pixels(width: int, height: int, data: bytes, depth: int) -> ac.Pixels:
    """The client's pixels of ``depth`` bits a channel."""
    if depth == 16:
        return ac.Pixels(width, height, data, depth=16)
    return ac.Pixels(width, height, data)


def pixels_depth(pixels) -> int:
    return int(getattr(pixels, "depth", 8) or 8)


def is_deep(image) -> bool:
    """More than 8 bits a channel (16/32-bit integer, half, float, double)."""
    precision = image.get_precision()
    name = getattr(precision, "value_name", None) or getattr(precision, "name", None)
    return "U8_" not in (name or str(precision))


def transport_depth(operation: dict, image) -> int:
    """16 when the image holds more than 8 bits, the operation keeps 16 bits (its
    ``input_formats``) and this client can send them; else 8."""
    if "rgba16" in (operation.get("input_formats") or []) and is_deep(image) \
            and deep_client():
        return 16
    return 8


def deep_client() -> bool:
    """Whether the shared client carries 16-bit pixels (``Pixels(depth=16)``)."""
    fields = getattr(ac.Pixels, "__dataclass_fields__", {})
    return "depth" in fields


def check_image_mode(image) -> None:
    """Indexed images are refused with what to do: GEGL would read their palette colours, but
    results could only be written back re-quantised to the palette."""
    if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
        raise ac.AieditError(
            "aiedit works on RGB and grayscale images; this one has indexed colours: convert it "
            "first with Image > Mode > RGB (and back to Indexed afterwards if you need to)",
            "indexed_image")


def read_selection_mask(image, region: ac.Region) -> ac.Mask:
    """The selection inside ``region`` as a soft 8-bit mask (255 = selected)."""
    rect = Gegl.Rectangle.new(region.x, region.y, region.width, region.height)
    data = image.get_selection().get_buffer().get(rect, 1.0, GRAY, Gegl.AbyssPolicy.NONE)
    return ac.Mask(region.width, region.height, bytes(data))


def read_source(image, drawable, region: ac.Region, source: str, depth: int = 8) -> ac.Pixels:
    """Pixels of the active layer, or of the visible image, inside ``region``."""
    if source != "visible":
        return read_rgba(drawable, region, depth)
    visible = Gimp.Layer.new_from_visible(image, image, "aiedit visible")
    try:
        return read_rgba(visible, region, depth)
    finally:
        visible.delete()


def sends_image(operation: dict) -> bool:
    """Whether the plug-in sends pixels: only when the operation requires them (generate's
    optional image is for refining, which the plug-in does not offer: it draws anew)."""
    return (operation.get("inputs") or {}).get("image") == "required"


def plan_job(operation: dict, image, drawable, prompt: str, model: str, params: dict,
             source: str = "layer", margin: int = DEFAULT_MARGIN, controls: list = (),
             style: str = "") -> Plan:
    """Decide region, image and mask for ``operation`` (a ``/v1/operations`` entry).

    ``drawable`` is the active layer (a layer group reads as what it shows) or None when no
    layer is selected: then only what needs no layer runs (generate, or pixels from the
    visible image), and anything else says what to select."""
    op_id = operation["id"]
    check_image_mode(image)
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
    plan = Plan(op_id, model, params, region, prompt=prompt, geometry=document_geometry(image))
    if sends_image(operation):
        plan.image = read_source(image, drawable, region, source,
                                 transport_depth(operation, image))
    if bounds is not None and inputs.get("mask", "unused") != "unused":
        plan.mask = read_selection_mask(image, region)
    if bounds is not None and op_id in SELECTION_RESULTS and operation.get("region") != "layer":
        plan.layer_mask = plan.mask or read_selection_mask(image, region)
        if op_id not in MASKED_OPERATIONS and ac.is_opaque_mask(plan.layer_mask):
            plan.layer_mask = None  # a rectangle: the layer's own edges do it
    if op_id == "generate":
        _default_generate_size(plan, operation)
    plan.style = style or ""
    add_controls(plan, operation, controls)
    return plan


CONTROL_KINDS = ("scribble", "lineart", "canny", "depth", "pose", "reference")


def add_controls(plan: Plan, operation: dict, controls: list) -> None:
    """Control layers: each ``{layer, kind, strength?, preprocess?, start?, end?}`` becomes a
    file part ``control<n>`` holding that layer's pixels over the job's region (same size and
    offsets as the image) and an item of ``params.control``."""
    if not controls:
        return
    if "control" not in _schema_properties(operation):
        raise ac.AieditError(f"{TITLES.get(plan.operation, plan.operation)} takes no control "
                             "layers", "control_unsupported")
    items = []
    for number, control in enumerate(controls):
        kind = control.get("kind")
        if kind not in CONTROL_KINDS:
            raise ac.AieditError(f"control layer {number + 1}: kind must be one of "
                                 f"{', '.join(CONTROL_KINDS)}", "bad_control")
        layer = control["layer"]
        name = f"control{number}"
        plan.parts[name] = read_rgba(layer, plan.region, 8)
        item = {"kind": kind, "input": name}
        for key in ("strength", "start", "end", "preprocess"):
            if control.get(key) is not None:
                item[key] = control[key]
        items.append(item)
    plan.params["control"] = items


def all_layers(image) -> list:
    """The image's layers, groups' children after their group, top first."""
    out = []

    def walk(layers):
        for layer in layers:
            out.append(layer)
            if layer.is_group():
                walk(layer.get_children())

    walk(image.get_layers())
    return out


def fetch_styles(client: ac.Client, op_id: str) -> list:
    """``GET /v1/styles`` entries that apply to ``op_id`` (none from older servers)."""
    try:
        answer = client._json("GET", "/v1/styles")
    except ac.AieditError as error:
        if error.status == 404:
            return []
        raise
    styles = answer.get("styles", []) if isinstance(answer, dict) else []
    return [s for s in styles if not s.get("operations") or op_id in s["operations"]]


def fetch_loras(client: ac.Client) -> list:
    """LoRAs of ``/v1/models`` (engine ``lora``) that can run now."""
    return [m for m in client.models()
            if m.get("engine") == "lora" and m.get("available", True)]


def find_layer(image, ref):
    """A layer of ``image`` by id (int) or name (str), in groups too."""
    if isinstance(ref, int):
        item = Gimp.Item.get_by_id(ref)
        if item is not None and item.is_valid() and isinstance(item, Gimp.Layer):
            return item
    else:
        layer = image.get_layer_by_name(str(ref))
        if layer is not None:
            return layer
    raise ac.AieditError(f"control layer '{ref}': the image has no such layer", "no_layer")


def parse_controls(image, text: str) -> list:
    """The ``controls`` argument: a JSON list of ``{layer (name or id), kind, strength,
    preprocess, start, end}``."""
    text = (text or "").strip() or "[]"
    try:
        items = json.loads(text)
    except ValueError as error:
        raise ac.AieditError(f"controls: not valid JSON ({error})", "bad_params") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) and "layer" in i
                                              for i in items):
        raise ac.AieditError('controls: must be a JSON list like [{"layer": "Sketch", '
                             '"kind": "scribble", "strength": 0.8}]', "bad_params")
    return [dict(item, layer=find_layer(image, item["layer"])) for item in items]


def submit_plan(client: ac.Client, plan: Plan) -> dict:
    """``POST /v1/jobs`` for the plan. The shared client's ``submit`` sends image, mask and
    reference; jobs with control parts or a style go through its plumbing here."""
    if not plan.parts and not plan.style:
        return client.submit(**plan.submit_args())
    request = {"operation": plan.operation, "params": dict(plan.params),
               "region": plan.region.as_json()}
    if plan.model:
        request["model"] = plan.model
    if plan.style:
        request["style"] = plan.style
    image = plan.image
    if image is not None and pixels_depth(image) == 16 and not client.takes_16bit(
            plan.operation):
        image = image.to_8bit()
    files, raw = [], {}
    for name, value in (("image", image), ("mask", plan.mask), *plan.parts.items()):
        if value is None:
            continue
        files.append((name, value.data))
        raw[name] = {"width": value.width, "height": value.height}
        if isinstance(value, ac.Pixels) and pixels_depth(value) == 16:
            raw[name]["format"] = "rgba16"
    request["raw"] = raw
    body, content_type = ac._multipart([("request", json.dumps(request).encode())], files)
    headers = {"Content-Type": content_type, "Idempotency-Key": uuid.uuid4().hex}
    return client._retrying(lambda: client._json("POST", "/v1/jobs", body, headers))


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


# ---------------------------------------------------------------- geometry that follows the image


class ImageChanged(ac.AieditError):
    """The image was closed, cropped, resized or scaled while the job ran: its results would
    land in the wrong place. ``closed`` tells which; the caller offers to place them at the
    old position (a new image when it was closed) or to discard them."""

    def __init__(self, message: str, closed: bool):
        super().__init__(message, "image_closed" if closed else "image_changed")
        self.closed = closed


def _own_growth(image) -> dict:
    """What aiedit's own canvas growth (outpaint) did to the image, kept in a parasite that
    undo takes back with the growth: the origin's shift, the size after it, a serial."""
    parasite = image.get_parasite(GEOMETRY_PARASITE)
    if parasite is None:
        return {}
    try:
        data = json.loads(bytes(parasite.get_data()).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def document_geometry(image) -> dict:
    """The image as a job leaves it: id, size and aiedit's origin shift so far."""
    own = _own_growth(image)
    return {"image_id": image.get_id(), "width": image.get_width(),
            "height": image.get_height(), "origin": [own.get("x", 0), own.get("y", 0)],
            "serial": own.get("serial", 0)}


def record_growth(image, dx: int, dy: int) -> None:
    """After aiedit grew the canvas by (dx, dy) at the left/top: results of jobs still
    running follow that shift (see ``follow_geometry``)."""
    own = _own_growth(image)
    data = {"x": own.get("x", 0) + dx, "y": own.get("y", 0) + dy,
            "width": image.get_width(), "height": image.get_height(),
            "serial": own.get("serial", 0) + 1}
    flags = Gimp.PARASITE_PERSISTENT | Gimp.PARASITE_UNDOABLE
    image.attach_parasite(Gimp.Parasite.new(GEOMETRY_PARASITE, flags,
                                            list(json.dumps(data).encode("utf-8"))))


def undo_growth(image, before: dict) -> None:
    """Take back canvas growth aiedit made since ``before`` (a ``document_geometry``), e.g.
    for an outpaint result that was previewed and then not applied."""
    if not before or not image_alive(image):
        return
    own = _own_growth(image)
    if own.get("serial", 0) == before.get("serial", 0):
        return
    dx = own.get("x", 0) - before["origin"][0]
    dy = own.get("y", 0) - before["origin"][1]
    image.resize(before["width"], before["height"], -dx, -dy)
    if before.get("serial", 0) == 0:
        image.detach_parasite(GEOMETRY_PARASITE)
    else:
        data = {"x": before["origin"][0], "y": before["origin"][1], "width": before["width"],
                "height": before["height"], "serial": before["serial"]}
        flags = Gimp.PARASITE_PERSISTENT | Gimp.PARASITE_UNDOABLE
        image.attach_parasite(Gimp.Parasite.new(GEOMETRY_PARASITE, flags,
                                                list(json.dumps(data).encode("utf-8"))))


def image_alive(image) -> bool:
    return image is not None and image.is_valid()


def follow_geometry(image, geometry: dict) -> tuple:
    """(dx, dy) to add to the results' offsets so they land where they were meant to, or
    ``ImageChanged`` when the image changed in a way results cannot follow. aiedit's own
    canvas growth (another outpaint applied first) is followed; a crop, resize or scale by
    anything else is not guessed at."""
    if not geometry:
        return 0, 0
    if not image_alive(image):
        raise ImageChanged("The image this job was sent from was closed while the job ran; "
                           "its results can open in a new image at their old position, or be "
                           "discarded", closed=True)
    own = _own_growth(image)
    expected = (geometry["width"], geometry["height"])
    if own.get("serial", 0) != geometry.get("serial", 0):
        expected = (own.get("width"), own.get("height"))
    now = (image.get_width(), image.get_height())
    if now != expected:
        raise ImageChanged(
            f"The image changed from {expected[0]}x{expected[1]} to {now[0]}x{now[1]} pixels "
            "(cropped, resized or scaled) while the job ran, so its results no longer fit where "
            "they were made for; place them at the old position anyway, or discard them",
            closed=False)
    origin = geometry.get("origin") or [0, 0]
    return own.get("x", 0) - origin[0], own.get("y", 0) - origin[1]


# ---------------------------------------------------------------- running the job


@dataclass
class Outcome:
    job: dict
    images: list  # [(Result, Pixels)] image results, in index order


class GimpProgress:
    """GIMP's progress bar: stage text, queue position, step fraction; step previews of
    diffusion jobs go to ``on_preview`` (the interactive preview window) when given."""

    def __init__(self, title: str, on_preview=None, pump=None):
        Gimp.progress_init(title)
        self.queued = True
        self.on_preview = on_preview
        self.pump = pump
        self.last_preview = None

    def preview(self, preview) -> None:
        self.last_preview = preview.step
        if self.on_preview is not None:
            self.on_preview(preview)

    def show(self, job: dict) -> None:
        Gimp.progress_set_text(ac.describe_progress(job))
        self.queued = job.get("state") == "queued"
        if not self.queued:
            Gimp.progress_update(ac.progress_fraction(job))

    def tick(self) -> None:
        if self.queued:
            Gimp.progress_pulse()
        if self.pump is not None:
            self.pump()


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
        elif kind == "preview":
            if hasattr(progress, "preview"):
                progress.preview(payload)
        elif kind == "done":
            return payload
        else:
            raise payload


def _work(client: ac.Client, plan: Plan, events: queue.Queue,
          pending: "ac.JobJournal | None", watchdog: bool) -> None:
    """The worker thread: network and files only, never a Gimp call."""
    guard = None
    try:
        job = submit_plan(client, plan)
        events.put(("progress", job))
        if pending is not None:
            mask = save_mask(job["id"], plan.layer_mask or plan.mask,
                             os.path.dirname(pending.path))
            pending.add(job["id"], server_url=client.url, operation=plan.operation, mask=mask,
                        prompt=plan.prompt, region=plan.region.as_json(), options=plan.options,
                        geometry=plan.geometry, model=plan.model,
                        params={k: v for k, v in plan.params.items() if k != "control"},
                        style=plan.style)
        if watchdog:
            guard = ac.CancelWatchdog(client, job["id"])
        job = client.wait(job["id"], on_progress=lambda j: events.put(("progress", j)),
                          on_preview=lambda p: events.put(("preview", p)))
        events.put(("done", Outcome(job, download_images(client, job))))
    except BaseException as error:  # noqa: BLE001 - handed to the main thread
        if pending is not None and isinstance(error, (ac.JobFailed, ac.JobCanceled)):
            forget(error.job.get("id", ""), pending)
        events.put(("error", error))
    finally:
        if guard is not None:
            guard.done()


def download_images(client: ac.Client, job: dict) -> list:
    return [(r, client.fetch_pixels(r)) for r in client.results(job) if r.kind == "image"]


# ---------------------------------------------------------------- re-render (live session)

RERENDER_INDEX = 1000  # results made by re-rendering are numbered from here


class ReRender:
    """Renders a finished job's request again with another seed in a live session
    (``POST /v1/live``): the model stays loaded and nothing is queued. Network only, so it
    may run in a worker thread. Jobs with control layers or a style are not re-rendered (a
    live frame takes neither)."""

    OPERATIONS = ("generate", "inpaint")

    def __init__(self, client: ac.Client, plan: Plan, job: dict):
        self.client, self.plan = client, plan
        self.model = plan.model or job.get("model") or ""
        self.session = None
        self.made = 0

    @classmethod
    def possible(cls, plan: Plan, operation: dict, job: dict) -> bool:
        """For generate and inpaint jobs of a diffusion model without control layers or a
        style."""
        model = plan.model or job.get("model") or operation.get("default_model")
        engine = next((m.get("engine") for m in operation.get("models") or []
                       if m.get("id") == model), None)
        return plan.operation in cls.OPERATIONS and engine == "diffusion" \
            and not plan.parts and not plan.style

    def _open(self) -> dict:
        if self.session is None:
            params = {k: v for k, v in self.plan.params.items()
                      if k not in ("count", "seed", "control")}
            body = {"operation": self.plan.operation, "params": params}
            if self.model:
                body["model"] = self.model
            self.session = self.client._json("POST", "/v1/live", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
        return self.session

    def frame(self, seed: int):
        """One more result, made with ``seed``: (Result, Pixels)."""
        session = self._open()
        request = {"params": {"seed": seed}, "region": self.plan.region.as_json()}
        files, raw = [], {}
        image = self.plan.image
        if image is not None and pixels_depth(image) == 16:
            image = image.to_8bit()  # live frames are 8-bit
        for name, value in (("image", image), ("mask", self.plan.mask)):
            if value is not None:
                files.append((name, value.data))
                raw[name] = {"width": value.width, "height": value.height}
        if raw:
            request["raw"] = raw
        body, content_type = ac._multipart([("request", json.dumps(request).encode())], files)
        url = session.get("frames_url") or f"/v1/live/{session['id']}/frames"
        _status, headers, data = self.client._request(
            "POST", url + "?format=rgba", body, {"Content-Type": content_type})
        width, height = int(headers["X-Image-Width"]), int(headers["X-Image-Height"])
        index = RERENDER_INDEX + self.made
        self.made += 1
        result = ac.Result(index, "image", width, height, int(headers.get("X-Offset-X", 0)),
                           int(headers.get("X-Offset-Y", 0)),
                           int(headers["X-Seed"]) if headers.get("X-Seed") else seed, "")
        return result, ac.Pixels(width, height, data)

    def close(self) -> None:
        if self.session is not None:
            try:
                self.client._request("DELETE", f"/v1/live/{self.session['id']}")
            except ac.AieditError:
                pass  # it expires by itself after a minute
            self.session = None


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
    write_buffer(layer, pixels.data, pixels.width, pixels.height,
                 RGBA16 if pixels_depth(pixels) == 16 else RGBA)
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


PLACEMENTS = ("follow", "old-position", "discard")


def insert_results(image, anchor, plan: Plan, outcome: Outcome, interactive: bool = False,
                   placement: str = "follow", chosen=None):
    """Put the results into GIMP; returns the new layers (or, for upscale into a new image,
    that image's layer). ``chosen``: indexes of the results to insert (default all).

    ``placement`` "follow": the results follow aiedit's own canvas growth since the job was
    sent, and ``ImageChanged`` is raised when the image was closed, cropped or resized
    meanwhile; "old-position": insert at the offsets the job was sent with (into a new image
    of the old size when the image was closed); "discard": insert nothing."""
    images = [item for item in outcome.images if chosen is None or item[0].index in chosen]
    if not outcome.images:
        raise ac.AieditError("The job finished without an image result", "no_result")
    if placement == "discard" or not images:
        return []
    if plan.operation == "upscale" and plan.options.get("upscale_into", "new-image") != "resize":
        return [upscale_into_new_image(image, plan, images[0], interactive)]
    dx = dy = 0
    if placement == "follow":
        dx, dy = follow_geometry(image, plan.geometry)
    elif not image_alive(image):
        image, anchor = new_image_like(plan.geometry, images, interactive), None
    if anchor is not None and not anchor.is_valid():
        anchor = None
    images = [(_moved(result, dx, dy), pixels) for result, pixels in images]
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
            mask = plan.layer_mask
            if mask is None and plan.operation in MASKED_OPERATIONS:
                mask = plan.mask
            if mask is not None:
                add_mask(layer, mask)
            layers.append(layer)
        return layers
    finally:
        image.undo_group_end()


def _moved(result: ac.Result, dx: int, dy: int) -> ac.Result:
    return dataclasses.replace(result, x=result.x + dx, y=result.y + dy)


def new_image_like(geometry: dict, images: list, interactive: bool):
    """A new image of the closed image's size (grown to hold results that reach past it)."""
    width = max([geometry.get("width", 1)] + [r.x + r.width for r, _ in images])
    height = max([geometry.get("height", 1)] + [r.y + r.height for r, _ in images])
    deep = any(pixels_depth(p) == 16 for _, p in images)
    new_image = Gimp.Image.new_with_precision(
        width, height, Gimp.ImageBaseType.RGB,
        Gimp.Precision.U16_NON_LINEAR if deep else Gimp.Precision.U8_NON_LINEAR)
    if interactive:
        Gimp.Display.new(new_image)
    return new_image


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
        record_growth(image, -left, -top)
        for r in results:
            r.x -= left
            r.y -= top


def upscale_into_new_image(source, plan: Plan, item, interactive: bool):
    """The upscaled layer as a new image with the source's colour profile and precision, and
    its resolution scaled with the pixels (the print size stays the same)."""
    result, pixels = item
    precision = Gimp.Precision.U8_NON_LINEAR
    if image_alive(source):
        precision = source.get_precision()
    elif pixels_depth(pixels) == 16:
        precision = Gimp.Precision.U16_NON_LINEAR
    base = Gimp.ImageBaseType.RGB
    if image_alive(source) and source.get_base_type() == Gimp.ImageBaseType.GRAY:
        base = Gimp.ImageBaseType.GRAY
    new_image = Gimp.Image.new_with_precision(pixels.width, pixels.height, base, precision)
    if image_alive(source):
        profile = source.get_color_profile()
        if profile is not None:
            new_image.set_color_profile(profile)
        _ok, xres, yres = source.get_resolution()
        fx = pixels.width / max(1, plan.region.width)
        fy = pixels.height / max(1, plan.region.height)
        new_image.set_resolution(xres * fx, yres * fy)
    add_layer(new_image, None, layer_name("upscale", "", result.seed), pixels, 0, 0)
    if interactive:
        Gimp.Display.new(new_image)
    return new_image


# ---------------------------------------------------------------- results from earlier runs


def finished_earlier(client: ac.Client, kept: bool = False) -> list:
    """Journal entries of this server whose jobs succeeded after an earlier run died (and,
    with ``kept``, those whose results the user kept for later), with their final job JSON;
    entries of failed, canceled or vanished jobs are dropped."""
    found = []
    pending = journal()
    for entry in pending.entries():
        if entry.get("server_url") != client.url or (entry.get("kept") and not kept):
            continue
        try:
            job = client.job(entry["job_id"])
        except ac.ConnectionFailed:
            return found
        except ac.AieditError:
            forget(entry["job_id"])
            continue
        if job.get("state") == "succeeded":
            found.append((entry, job))
        elif job.get("state") in ("failed", "canceled"):
            forget(entry["job_id"])
    return found


def recovered_plan(entry: dict) -> Plan:
    return Plan(entry["operation"], entry.get("model", ""), entry.get("params") or {},
                ac.Region(**entry["region"]), prompt=entry.get("prompt", ""),
                options=entry.get("options") or {}, geometry=entry.get("geometry") or {},
                style=entry.get("style") or "", layer_mask=load_mask(entry))


def recovered_target(image, entry: dict):
    """The image a recovered job was sent from when it is still open, else ``image``."""
    image_id = (entry.get("geometry") or {}).get("image_id")
    if image_id is not None and (image is None or image.get_id() != image_id):
        origin = Gimp.Image.get_by_id(image_id)
        if image_alive(origin):
            return origin
    return image


def insert_recovered(client: ac.Client, image, anchor, entry: dict, job: dict,
                     interactive: bool, placement: str = "follow"):
    """Insert the results of a job an earlier run did not live to insert (into the image it
    came from when that is still open)."""
    target = recovered_target(image, entry)
    if target is not image:
        anchor = None
    outcome = Outcome(job, download_images(client, job))
    left = {r.index for r, _ in outcome.images} - set(entry.get("applied") or [])
    layers = insert_results(target, anchor, recovered_plan(entry), outcome, interactive,
                            placement, chosen=left)
    forget(entry["job_id"])
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
            "default": prop.get("default"),
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
