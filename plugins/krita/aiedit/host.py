"""Everything that touches Krita's document API: reading a job's inputs, inserting its results.

Call these on Krita's GUI thread only. Network code lives in ``jobs.py`` and never calls Krita.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

from PyQt5.QtCore import QByteArray

from . import colour
from . import pixels as px
from .aiedit_client import (
    Mask,
    Pixels,
    Region,
    Result,
    grow_region,
)

SOURCE_IMAGE = "image"  # the visible image (all layers merged)
SOURCE_LAYER = "layer"  # the active layer's own pixels
DEFAULT_MARGIN = 32
MASKED_OPERATIONS = ("inpaint", "edit")
PREVIEW_NAME = "aiedit preview (not applied)"
LIVE_NAME = "aiedit live (not applied)"
PREVIEW_NAMES = (PREVIEW_NAME, LIVE_NAME)
MASK_LAYER_NAME = "Selection mask (paint to show, erase to hide)"
MASK_BLENDING = "destination-in"

# Per open document (by its root node's id): how the plugin's own canvas changes moved the
# document's origin, so results of jobs read before an outpaint still land where they belong.
_canvas: dict = {}
_WHITE_WHERE_SELECTED = bytes([0] + [255] * 255)
# The shared client carries 16-bit pixels (Pixels.depth) from the deep-colour contract on.
DEEP_PIXELS = "depth" in getattr(Pixels, "__dataclass_fields__", {})


class HostError(Exception):
    """Something about the document stops the job; the message says what to do."""


class DocumentClosed(HostError):
    """The document a result belongs to is not open any more."""


class CanvasChanged(HostError):
    """The canvas was resized or cropped while the job ran: place at the old position or
    discard (``force=True`` places it)."""


@dataclass
class Placement:
    """Where a capture sits: which document, and its canvas as the plugin knew it then."""

    key: str
    file_name: str
    title: str
    epoch: int
    origin: tuple
    size: tuple


@dataclass
class Capture:
    """What one job reads from a document: where, which pixels, which selection.

    ``raw`` is sRGB BGRA read (and, for other colour spaces, converted by Krita) on the GUI
    thread; ``image`` turns it into the server's RGBA on first use, on the worker thread.
    """

    region: Region
    raw: px.Raw | None
    mask: Mask | None
    doc_width: int
    doc_height: int
    source_node: object = None
    layout: px.Layout = field(default_factory=lambda: px.Layout("RGBA", "U8", px.SRGB_PROFILE))
    placement: Placement | None = None
    deep: bool = False  # the operation takes 16-bit images: a 16-bit document sends 16 bits
    controls: list = field(default_factory=list)  # [(control item JSON, px.Raw)] over region
    _image: Pixels | None = field(default=None, repr=False)

    @property
    def has_selection(self) -> bool:
        return self.mask is not None

    @property
    def image(self) -> Pixels | None:
        if self._image is None and self.raw is not None:
            raw = self.raw
            if self.deep and raw.depth == "U16" and DEEP_PIXELS:
                self._image = Pixels(raw.width, raw.height, px.to_rgba16(raw.data, "U16"),
                                     depth=16)
            else:
                self._image = Pixels(raw.width, raw.height, px.to_rgba8(raw.data, raw.depth))
        return self._image


def layout(doc) -> px.Layout:
    """The document's colour space."""
    return px.layout_of(doc.colorModel(), doc.colorDepth(), doc.colorProfile())


def document_key(doc) -> str:
    return doc.rootNode().uniqueId().toString()


def placement_of(doc) -> Placement:
    """The document's canvas now; a size the plugin did not make starts a new epoch."""
    key, size = document_key(doc), (doc.width(), doc.height())
    state = _canvas.get(key)
    if state is None or state["size"] != size:
        epoch = state["epoch"] + 1 if state else 0
        state = _canvas[key] = {"epoch": epoch, "origin": (0, 0), "size": size}
    return Placement(key, doc.fileName() or "", doc.name() or "", state["epoch"],
                     state["origin"], size)


def find_document(placement: Placement | None):
    """The open document a capture was read from, or None if it was closed."""
    from krita import Krita

    if placement is None:
        return None
    documents = Krita.instance().documents()
    for doc in documents:
        if document_key(doc) == placement.key:
            return doc
    # After a restart the same file has a new id: adopt it (its canvas as it was saved)
    for doc in documents if placement.file_name else ():
        if doc.fileName() == placement.file_name:
            key = document_key(doc)
            if key not in _canvas and (doc.width(), doc.height()) == tuple(placement.size):
                _canvas[key] = {"epoch": placement.epoch, "origin": tuple(placement.origin),
                                "size": tuple(placement.size)}
            placement.key = key
            return doc
    return None


# -- reading


def read_capture(doc, operation: dict, source: str = SOURCE_IMAGE, margin: int | None = None,
                 node=None) -> Capture:
    """Read the region, pixels and selection mask ``operation`` needs from ``doc``.

    Region: the selection's bounds grown by ``margin`` (for operations on a selection), else the
    whole image. ``source`` picks the visible image or the active (or given) layer.
    """
    inputs = operation.get("inputs") or {}
    uses_image = inputs.get("image", "unused") != "unused"
    uses_mask = inputs.get("mask", "unused") != "unused"
    selection = _selection(doc)
    # Context around the selection helps only where a mask blends the result into it (inpaint,
    # edit); a generate (or its refine) covers exactly the selection.
    region = _region(doc, operation, selection, margin if uses_image and uses_mask else 0)
    mask = None
    if uses_mask and selection is not None:
        mask = Mask(region.width, region.height, bytes(selection.pixelData(*_rect(region))))
    if inputs.get("mask") == "required" and mask is None:
        raise HostError(f"Select the area to {operation.get('id', 'change')} first "
                        "(any selection tool), then try again.")
    raw, source_node = None, None
    doc_layout = layout(doc)
    if uses_image:
        raw, source_node = _read_pixels(doc, region, source, node, doc_layout)
    elif node is not None or source == SOURCE_LAYER:
        source_node = node or active_layer(doc)
    return Capture(region, raw, mask, doc.width(), doc.height(), source_node, doc_layout,
                   placement_of(doc))


def _selection(doc):
    selection = doc.selection()
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        return None
    return selection


def _region(doc, operation: dict, selection, margin: int | None) -> Region:
    if operation.get("region", "selection") == "selection" and selection is not None:
        x, y = selection.x(), selection.y()
        margin = DEFAULT_MARGIN if margin is None else margin
        try:
            return grow_region(x, y, x + selection.width(), y + selection.height(), margin,
                               doc.width(), doc.height())
        except ValueError:
            raise HostError("The selection lies outside the image: select inside it.") from None
    return Region(0, 0, doc.width(), doc.height())


def _read_pixels(doc, region: Region, source: str, node, doc_layout: px.Layout):
    if source == SOURCE_LAYER or node is not None:
        node = node or active_layer(doc)
        if node is None:
            raise HostError("There is no layer to read: add a paint layer and try again.")
        read = node.projectionPixelData if node.type() == "grouplayer" else node.pixelData
        data = bytes(read(*_rect(region)))
    else:
        with _previews_hidden(doc):
            doc.refreshProjection()
            data = bytes(doc.pixelData(*_rect(region)))
    return _to_srgb(data, region.width, region.height, doc_layout), node


def _to_srgb(data: bytes, width: int, height: int, doc_layout: px.Layout) -> px.Raw:
    try:
        return colour.to_srgb(data, width, height, doc_layout)
    except colour.ConversionFailed as error:
        raise HostError(str(error)) from None


class _previews_hidden:  # noqa: N801 - used as a statement
    """Hide the plugin's preview layers while the visible image is read."""

    def __init__(self, doc):
        self.doc = doc
        self.hidden = []

    def __enter__(self):
        for node in self.doc.topLevelNodes():
            if node.name() in PREVIEW_NAMES and node.visible():
                node.setVisible(False)
                self.hidden.append(node)
        return self

    def __exit__(self, *exc):
        for node in self.hidden:
            node.setVisible(True)
        if self.hidden:
            self.doc.refreshProjection()
        return False


CONTROL_KINDS = ("scribble", "lineart", "canny", "depth", "pose", "reference")


def read_controls(doc, capture: Capture, controls: list) -> None:
    """Read each control layer over the capture's region (same size, same offsets as the
    image) into ``capture.controls``. ``controls``: ``[{"node" or "layer", "kind", "strength",
    ...}]``; the other keys (start, end, preprocess, model) go to the server as they are."""
    doc_layout = layout(doc)
    for index, control in enumerate(controls):
        node = control.get("node") or find_layer(doc, control.get("layer", ""))
        if node is None:
            raise HostError(f"Control layer {control.get('layer')!r} is not in the image: "
                            "pick another layer.")
        kind = control.get("kind", "scribble")
        if kind not in CONTROL_KINDS:
            raise HostError(f"Unknown control kind {kind!r}: use one of "
                            f"{', '.join(CONTROL_KINDS)}.")
        item = {k: v for k, v in control.items() if k not in ("node", "layer")}
        item.update(kind=kind, input=f"control{index}")
        read = node.projectionPixelData if node.type() == "grouplayer" else node.pixelData
        raw = _to_srgb(bytes(read(*_rect(capture.region))), capture.region.width,
                       capture.region.height, doc_layout)
        capture.controls.append((item, raw))


def find_layer(doc, name: str):
    """The first layer called ``name`` (searching groups too), or None."""
    def walk(node):
        for child in node.childNodes():
            yield child
            yield from walk(child)

    return next((n for n in walk(doc.rootNode()) if n.name() == name
                 and n.type().endswith("layer")), None)


def active_layer(doc):
    """The active node if it is a layer; otherwise the topmost visible paint layer.

    Scripted runs (kritarunner) have no view, so ``activeNode()`` can be None there.
    """
    node = doc.activeNode()
    if node is not None and node.type().endswith("layer") and node.name() not in PREVIEW_NAMES:
        return node
    layers = [n for n in doc.topLevelNodes() if n.type() == "paintlayer" and n.visible()]
    return layers[-1] if layers else None


def _rect(region: Region):
    return region.x, region.y, region.width, region.height


# -- writing


def layer_name(operation: str, prompt: str = "", seed=None, model: str = "") -> str:
    """A layer name a person can recognise later: operation, prompt, seed."""
    parts = [operation]
    prompt = " ".join((prompt or "").split())
    if prompt:
        parts.append(prompt if len(prompt) <= 40 else prompt[:39] + "…")
    elif model:
        parts.append(model)
    if seed is not None:
        parts.append(f"seed {seed}")
    return " · ".join(parts)


def encode_result(pixels: Pixels, doc_layout: px.Layout) -> px.Raw:
    """A result's RGBA (8 or 16 bits) as sRGB BGRA at the depth the document is written from
    (worker thread)."""
    depth = doc_layout.srgb_depth
    if getattr(pixels, "depth", 8) == 16:
        return px.Raw(pixels.width, pixels.height, px.from_rgba16(pixels.data, depth), depth)
    return px.Raw(pixels.width, pixels.height, px.from_rgba8(pixels.data, depth), depth)


def to_8bit(pixels: Pixels) -> Pixels:
    """8-bit RGBA of a result (thumbnails and previews); 16-bit keeps its high bytes."""
    if getattr(pixels, "depth", 8) != 16:
        return pixels
    return Pixels(pixels.width, pixels.height, pixels.data[1::2])


def check_document(capture: Capture):
    """The document ``capture`` was read from; ``DocumentClosed`` if it is gone."""
    doc = find_document(capture.placement)
    if doc is None:
        name = (capture.placement.title or capture.placement.file_name) if capture.placement \
            else "the image"
        raise DocumentClosed(f"The document \u201c{name}\u201d this result belongs to was closed. "
                             "Open the result as a new image, or discard it.")
    return doc


def place(doc, capture: Capture, x: int, y: int, force: bool = False):
    """Where a result offset (document pixels at read time) lies in the document now.

    The plugin's own canvas growth (an outpaint applied meanwhile) is followed; any other
    canvas change raises ``CanvasChanged`` unless ``force`` (then: the old position).
    """
    p = capture.placement
    if p is None:
        return x, y
    state = _canvas.get(p.key)
    now = (doc.width(), doc.height())
    if state is None or state["epoch"] != p.epoch or state["size"] != now:
        if force:
            return x, y
        raise CanvasChanged(
            f"The canvas changed from {p.size[0]}\u00d7{p.size[1]} to {now[0]}\u00d7{now[1]} "
            "while the job ran (resized or cropped), so the result may not line up. Place it "
            "at its old position, or discard it.")
    return x + state["origin"][0] - p.origin[0], y + state["origin"][1] - p.origin[1]


def insert_image(doc, capture: Capture, operation: str, result: Result, pixels: Pixels,
                 name: str, raw: px.Raw | None = None, force: bool = False, masked=None):
    """Insert one image result as a new layer at the result's offset, leaving every other
    layer as it was. For inpaint and edit the selection becomes an editable mask: a
    transparency mask in Krita 5.2+, in 5.1 (whose scripting API cannot fill one) a group
    holding the result and a mask layer (blending ``destination-in``). The canvas grows if the
    result reaches beyond it (outpaint). ``raw`` and ``masked`` (from ``encode_result`` and
    ``result_mask``) may come ready from the worker thread."""
    x, y = place(doc, capture, result.x, result.y, force)
    if masked is None:
        masked = result_mask(capture, operation, result.x, result.y, pixels.width, pixels.height)
    if masked is not None and masked[1] is None:
        raise HostError("The selection does not overlap the result: nothing to insert.")
    x, y = _grow_canvas_to_fit(doc, x, y, pixels.width, pixels.height)
    node = _paint_layer(doc, name, raw or encode_result(pixels, capture.layout), x, y)
    parent, above = _insertion_point(doc, capture.source_node)
    if masked is None:
        parent.addChildNode(node, above)
    else:
        node = _with_mask(doc, node, masked, x, y, parent, above, name)
    doc.refreshProjection()  # scripted layers show only after this (Krita 5.1)
    return node


def result_mask(capture: Capture, operation: str, x: int, y: int, width: int, height: int):
    """For masked operations: the selection over the result's rectangle and the pixels of its
    mask layer (``(mask, None)`` when nothing of it is selected); None for the others. No Krita
    call: the worker thread prepares it."""
    if operation not in MASKED_OPERATIONS or capture.mask is None:
        return None
    mask = mask_for(capture, x, y, width, height)
    if mask.data.count(0) == len(mask.data):
        return mask, None
    return mask, mask_layer_raw(mask, capture.layout)


def mask_layer_raw(mask: Mask, doc_layout: px.Layout) -> px.Raw:
    """White where selected, with the selection as alpha (transparent is all zero), as sRGB
    BGRA at the document's depth."""
    shown = mask.data.translate(_WHITE_WHERE_SELECTED)
    depth = doc_layout.srgb_depth
    step = 4 if depth == "U8" else 8
    out = bytearray(step * mask.width * mask.height)
    for offset in range(0, step - step // 4):  # the colour bytes: B, G, R (each byte of them)
        out[offset::step] = shown
    for offset in range(step - step // 4, step):
        out[offset::step] = mask.data
    return px.Raw(mask.width, mask.height, bytes(out), depth)


def show_preview(doc, capture: Capture, operation: str, result: Result, pixels: Pixels,
                 raw: px.Raw | None = None, name: str = PREVIEW_NAME):
    """A preview layer of one result (replacing any earlier one of that ``name``), masked like
    the result would be; None when the result does not fit the canvas as it is (outpaint) or
    cannot be placed."""
    remove_previews(doc, name)
    try:
        x, y = place(doc, capture, result.x, result.y)
    except HostError:
        return None
    if x < 0 or y < 0 or x + pixels.width > doc.width() or y + pixels.height > doc.height():
        return None
    node = _paint_layer(doc, name, raw or encode_result(pixels, capture.layout), x, y)
    parent, above = doc.rootNode(), _top_layer(doc)
    masked = result_mask(capture, operation, result.x, result.y, pixels.width, pixels.height)
    if masked is None:
        parent.addChildNode(node, above)
    elif masked[1] is not None:
        node = _mask_group(doc, node, masked[1], x, y, parent, above, name)
    else:
        return None
    doc.refreshProjection()
    return node


def remove_previews(doc, name: str = PREVIEW_NAME) -> int:
    removed = 0
    for node in doc.topLevelNodes():
        if node.name() == name:
            node.remove()
            removed += 1
    return removed


def _paint_layer(doc, name: str, raw: px.Raw, x: int, y: int):
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(QByteArray(_from_srgb(raw, layout(doc))), x, y, raw.width, raw.height)
    return node


def _from_srgb(raw: px.Raw, doc_layout: px.Layout) -> bytes:
    try:
        return colour.from_srgb(raw, doc_layout)
    except colour.ConversionFailed as error:
        raise HostError(str(error)) from None


def _with_mask(doc, node, masked, x: int, y: int, parent, above, name: str):
    mask, mask_raw = masked
    if hasattr(doc, "createTransparencyMask"):  # Krita 5.2+
        parent.addChildNode(node, above)
        _add_transparency_mask(doc, node, mask, x, y)
        return node
    return _mask_group(doc, node, mask_raw, x, y, parent, above, name)


def _add_transparency_mask(doc, layer, mask: Mask, x: int, y: int) -> None:
    from krita import Selection

    selection = Selection()
    selection.setPixelData(QByteArray(mask.data), x, y, mask.width, mask.height)
    node = doc.createTransparencyMask("Selection")
    node.setSelection(selection)
    layer.addChildNode(node, None)


def _mask_group(doc, node, mask_raw: px.Raw, x: int, y: int, parent, above, name: str):
    """The result and, above it, a white layer whose alpha is the selection, blended
    ``destination-in``: the group shows the result where the selection was. The user edits the
    mask by painting (show) or erasing (hide) on that layer. The group is filled before it
    joins the image, so Krita updates the canvas once."""
    group = doc.createGroupLayer(name)
    group.addChildNode(node, None)
    mask_layer = doc.createNode(MASK_LAYER_NAME, "paintlayer")
    doc_layout = layout(doc)
    if doc_layout.model == "RGBA" and doc_layout.depth == mask_raw.depth:
        data = mask_raw.data  # white and alpha are the same numbers in every RGB profile
    else:
        data = _from_srgb(mask_raw, doc_layout)
    mask_layer.setPixelData(QByteArray(data), x, y, mask_raw.width, mask_raw.height)
    mask_layer.setBlendingMode(MASK_BLENDING)
    group.addChildNode(mask_layer, node)
    parent.addChildNode(group, above)
    return group


def _raw_at(rgba8: bytes, width: int, height: int, doc_layout: px.Layout) -> px.Raw:
    depth = doc_layout.srgb_depth
    return px.Raw(width, height, px.from_rgba8(rgba8, depth), depth)


def mask_for(capture: Capture, x: int, y: int, width: int, height: int) -> Mask:
    """The capture's selection mask over the rectangle (x, y, width, height); 0 outside it."""
    out = bytearray(width * height)
    region, mask = capture.region, capture.mask
    left, right = max(x, region.x), min(x + width, region.x + region.width)
    top, bottom = max(y, region.y), min(y + height, region.y + region.height)
    for row in range(top, bottom):
        src = (row - region.y) * region.width + (left - region.x)
        dst = (row - y) * width + (left - x)
        out[dst:dst + right - left] = mask.data[src:src + right - left]
    return Mask(width, height, bytes(out))
def _insertion_point(doc, source_node):
    """Directly above the source layer, or above the topmost layer of the image."""
    if (source_node is not None and source_node.parentNode() is not None
            and source_node.name() not in PREVIEW_NAMES):
        return source_node.parentNode(), source_node
    return doc.rootNode(), _top_layer(doc)


def _top_layer(doc):
    layers = [n for n in doc.rootNode().childNodes()
              if n.type().endswith("layer") and n.name() not in PREVIEW_NAMES]
    return layers[-1] if layers else None


def _grow_canvas_to_fit(doc, x: int, y: int, width: int, height: int):
    """Grow the canvas so the rectangle fits (outpaint); returns its new top-left corner and
    remembers how far the document's origin moved."""
    left, top = min(0, x), min(0, y)
    right, bottom = max(doc.width(), x + width), max(doc.height(), y + height)
    if (left, top, right, bottom) == (0, 0, doc.width(), doc.height()):
        return x, y
    state = _canvas.get(document_key(doc))
    known = state is not None and state["size"] == (doc.width(), doc.height())
    doc.resizeImage(left, top, right - left, bottom - top)
    doc.waitForDone()
    if known:
        state["origin"] = (state["origin"][0] - left, state["origin"][1] - top)
        state["size"] = (doc.width(), doc.height())
    return x - left, y - top


def new_document_for(doc, pixels: Pixels, name: str, capture: Capture | None = None,
                     raw: px.Raw | None = None):
    """A new document holding ``pixels`` (upscale, or a result whose document was closed), in
    the source document's colour space and profile, its resolution scaled with the pixels."""
    from krita import Krita

    app = Krita.instance()
    doc_layout = capture.layout if capture is not None else layout(doc)
    source_width = capture.region.width if capture is not None else doc.width()
    resolution = (doc.resolution() if doc is not None else 72.0) or 72.0
    resolution = resolution * pixels.width / max(1, source_width)
    base = (doc.name() if doc is not None else "") or \
        (capture.placement.title if capture is not None and capture.placement else "") or "image"
    new = app.createDocument(pixels.width, pixels.height, f"{base} ({name})", doc_layout.model,
                             doc_layout.depth, doc_layout.profile, resolution)
    node = _paint_layer(new, name, raw or encode_result(pixels, doc_layout), 0, 0)
    root = new.rootNode()
    root.addChildNode(node, root.childNodes()[-1] if root.childNodes() else None)
    new.refreshProjection()
    window = app.activeWindow()
    if window is not None:
        window.addView(new)
    return new, node


def insert_animation(doc, capture: Capture, frames: list[bytes], fps: int, name: str):
    """Video results: an animated layer made with ``Document.importAnimation``.

    ``importAnimation`` needs Krita's main window (it crashes in kritarunner); without one the
    frames become a group of layers named ``frame 001``… instead.
    """
    from krita import Krita

    folder = tempfile.mkdtemp(prefix="aiedit-frames-")
    paths = []
    for i, png in enumerate(frames):
        path = os.path.join(folder, f"frame-{i:04d}.png")
        with open(path, "wb") as f:
            f.write(png)
        paths.append(path)
    if Krita.instance().activeWindow() is None:
        try:
            return _frames_as_group(doc, capture, paths, name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    before = {n.uniqueId() for n in doc.topLevelNodes()}
    if not doc.importAnimation(paths, 0, 1):
        raise HostError(f"Krita could not import the video frames (saved in {folder}).")
    shutil.rmtree(folder, ignore_errors=True)  # importAnimation has read them into the document
    doc.setFramesPerSecond(int(fps))
    doc.setFullClipRangeStartTime(0)
    doc.setFullClipRangeEndTime(max(doc.fullClipRangeEndTime(), len(paths) - 1))
    added = [n for n in doc.topLevelNodes() if n.uniqueId() not in before]
    for node in added:
        node.setName(name)
    doc.refreshProjection()
    return added[-1] if added else None


def _frames_as_group(doc, capture: Capture, paths: list[str], name: str):
    from PyQt5.QtGui import QImage

    group = doc.createGroupLayer(name)
    x, y = place(doc, capture, capture.region.x, capture.region.y, force=True)
    for i, path in enumerate(paths):
        image = QImage(path).convertToFormat(QImage.Format_RGBA8888)
        data = bytes(image.constBits().asstring(image.sizeInBytes()))
        raw = _raw_at(data, image.width(), image.height(), capture.layout)
        frame = _paint_layer(doc, f"frame {i + 1:03d}", raw, x, y)
        children = group.childNodes()
        group.addChildNode(frame, children[-1] if children else None)
    parent, above = _insertion_point(doc, capture.source_node)
    parent.addChildNode(group, above)
    doc.refreshProjection()
    return group
