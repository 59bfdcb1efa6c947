"""Everything that touches Krita's document API: reading a job's inputs, inserting its results.

Call these on Krita's GUI thread only. Network code lives in ``jobs.py`` and never calls Krita.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from PyQt5.QtCore import QByteArray

from . import pixels as px
from .aiedit_client import (
    Mask,
    Pixels,
    Region,
    Result,
    crop_mask,
    crop_pixels,
    grow_region,
    mask_into_alpha,
)

SOURCE_IMAGE = "image"  # the visible image (all layers merged)
SOURCE_LAYER = "layer"  # the active layer's own pixels
DEFAULT_MARGIN = 32
MASKED_OPERATIONS = ("inpaint", "edit")


class HostError(Exception):
    """Something about the document stops the job; the message says what to do."""


@dataclass
class Capture:
    """What one job reads from a document: where, which pixels, which selection."""

    region: Region
    image: Pixels | None
    mask: Mask | None
    doc_width: int
    doc_height: int
    source_node: object = None

    @property
    def has_selection(self) -> bool:
        return self.mask is not None


def layout(doc) -> px.Layout:
    """The document's pixel layout; ``HostError`` for colour spaces aiedit cannot convert."""
    try:
        return px.layout_of(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
    except px.UnsupportedDocument as error:
        raise HostError(str(error)) from None


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
    image, source_node = None, None
    if uses_image:
        image, source_node = _read_pixels(doc, region, source, node)
    elif node is not None or source == SOURCE_LAYER:
        source_node = node or active_layer(doc)
    return Capture(region, image, mask, doc.width(), doc.height(), source_node)


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


def _read_pixels(doc, region: Region, source: str, node):
    doc_layout = layout(doc)
    if source == SOURCE_LAYER or node is not None:
        node = node or active_layer(doc)
        if node is None:
            raise HostError("There is no layer to read: add a paint layer and try again.")
        read = node.projectionPixelData if node.type() == "grouplayer" else node.pixelData
        raw = read(*_rect(region))
    else:
        doc.refreshProjection()
        raw = doc.pixelData(*_rect(region))
    return Pixels(region.width, region.height, px.to_rgba8(bytes(raw), doc_layout)), node


def active_layer(doc):
    """The active node if it is a layer; otherwise the topmost visible paint layer.

    Scripted runs (kritarunner) have no view, so ``activeNode()`` can be None there.
    """
    node = doc.activeNode()
    if node is not None and node.type().endswith("layer"):
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


def insert_image(doc, capture: Capture, operation: str, result: Result, pixels: Pixels,
                 name: str):
    """Insert one image result as a new paint layer at the result's offset; for inpaint and edit
    it is masked by the selection. The canvas grows if the result reaches beyond it."""
    x, y = _grow_canvas_to_fit(doc, result.x, result.y, pixels.width, pixels.height)
    mask = None
    if operation in MASKED_OPERATIONS and capture.mask is not None:
        mask = mask_for(capture, result.x, result.y, pixels.width, pixels.height)
    use_mask_node = mask is not None and hasattr(doc, "createTransparencyMask")
    if mask is not None and not use_mask_node:
        box = _mask_bounds(mask)
        if box is None:
            raise HostError("The selection does not overlap the result: nothing to insert.")
        pixels, mask = crop_pixels(pixels, box), crop_mask(mask, box)
        x, y = x + box.x, y + box.y
        pixels = _clear_transparent(mask_into_alpha(pixels, mask))
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(QByteArray(px.from_rgba8(pixels.data, layout(doc))), x, y,
                      pixels.width, pixels.height)
    parent, above = _insertion_point(doc, capture.source_node)
    parent.addChildNode(node, above)
    if use_mask_node:
        _add_transparency_mask(doc, node, mask, x, y)
    doc.refreshProjection()
    return node


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


def _mask_bounds(mask: Mask) -> Region | None:
    """The smallest rectangle holding every selected pixel of ``mask``."""
    rows = [y for y in range(mask.height)
            if mask.data[y * mask.width:(y + 1) * mask.width].strip(b"\0")]
    if not rows:
        return None
    left, right = mask.width, 0
    for y in rows:
        row = mask.data[y * mask.width:(y + 1) * mask.width]
        left = min(left, len(row) - len(row.lstrip(b"\0")))
        right = max(right, len(row.rstrip(b"\0")))
    return Region(left, rows[0], right - left, rows[-1] - rows[0] + 1)


def _clear_transparent(pixels: Pixels) -> Pixels:
    """Fully transparent pixels as zeros, so Krita sees them as empty."""
    data = bytearray(pixels.data)
    for i in range(3, len(data), 4):
        if not data[i]:
            data[i - 3:i] = b"\0\0\0"
    return Pixels(pixels.width, pixels.height, bytes(data))


def _add_transparency_mask(doc, layer, mask: Mask, x: int, y: int) -> None:
    """Krita 5.2+: an editable transparency mask (5.1's createNode masks stay empty)."""
    from krita import Selection

    selection = Selection()
    selection.setPixelData(QByteArray(mask.data), x, y, mask.width, mask.height)
    node = doc.createTransparencyMask("Selection")
    node.setSelection(selection)
    layer.addChildNode(node, None)


def _insertion_point(doc, source_node):
    """Directly above the source layer, or above the topmost layer of the image."""
    if source_node is not None and source_node.parentNode() is not None:
        return source_node.parentNode(), source_node
    root = doc.rootNode()
    layers = [n for n in root.childNodes() if n.type().endswith("layer")]
    return root, (layers[-1] if layers else None)


def _grow_canvas_to_fit(doc, x: int, y: int, width: int, height: int):
    """Grow the canvas so the rectangle fits (outpaint); returns its new top-left corner."""
    left, top = min(0, x), min(0, y)
    right, bottom = max(doc.width(), x + width), max(doc.height(), y + height)
    if (left, top, right, bottom) == (0, 0, doc.width(), doc.height()):
        return x, y
    doc.resizeImage(left, top, right - left, bottom - top)
    doc.waitForDone()
    return x - left, y - top


def new_document_for(doc, pixels: Pixels, name: str):
    """A new document holding ``pixels`` (for results bigger than the image, like upscale)."""
    from krita import Krita

    app = Krita.instance()
    title = f"{doc.name() or 'image'} ({name})"
    new = app.createDocument(pixels.width, pixels.height, title, doc.colorModel(),
                             doc.colorDepth(), doc.colorProfile(), doc.resolution())
    node = new.createNode(name, "paintlayer")
    node.setPixelData(QByteArray(px.from_rgba8(pixels.data, layout(new))), 0, 0,
                      pixels.width, pixels.height)
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
        return _frames_as_group(doc, capture, paths, name)
    before = {n.uniqueId() for n in doc.topLevelNodes()}
    if not doc.importAnimation(paths, 0, 1):
        raise HostError(f"Krita could not import the video frames (saved in {folder}).")
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
    for i, path in enumerate(paths):
        image = QImage(path).convertToFormat(QImage.Format_RGBA8888)
        data = bytes(image.constBits().asstring(image.sizeInBytes()))
        frame = doc.createNode(f"frame {i + 1:03d}", "paintlayer")
        frame.setPixelData(QByteArray(px.from_rgba8(data, layout(doc))), capture.region.x,
                           capture.region.y, image.width(), image.height())
        children = group.childNodes()
        group.addChildNode(frame, children[-1] if children else None)
    parent, above = _insertion_point(doc, capture.source_node)
    parent.addChildNode(group, above)
    doc.refreshProjection()
    return group
