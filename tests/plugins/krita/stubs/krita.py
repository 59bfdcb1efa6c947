"""A stand-in for Krita's ``krita`` module with the calls the aiedit plugin uses, behaving as
Krita 5.1.5 was seen to behave:

- integer pixels are BGRA (U8, U16), float pixels RGBA (F16, F32), gray is gray + alpha;
- ``createDocument`` adds an opaque white "Background" layer;
- ``doc.selection()`` is a copy, or None without a selection; ``setSelection`` adds a
  "Selection Mask" node to the root's children;
- a transparency mask made with ``createNode(..., "transparencymask")`` ignores setPixelData
  (its selection stays empty in 5.1), ``Document.createTransparencyMask`` exists only in 5.2
  (``Krita.reset(version="5.2.0")``);
- ``importAnimation`` needs a main window (it crashes kritarunner without one).

Pixel storage is a dict per node, fine for the small images tests use.
"""

from __future__ import annotations

import struct
import uuid

from PyQt5.QtCore import QByteArray, QObject, QRect, QUuid
from PyQt5.QtGui import QImage
from PyQt5.QtWidgets import QAction, QDockWidget

PIXEL_SIZE = {("RGBA", "U8"): 4, ("RGBA", "U16"): 8, ("RGBA", "F16"): 8, ("RGBA", "F32"): 16,
              ("GRAYA", "U8"): 2, ("GRAYA", "U16"): 4, ("CMYKA", "U8"): 5}


def _bytes(data) -> bytes:
    return bytes(data.data()) if isinstance(data, QByteArray) else bytes(data)


class Krita(QObject):
    _instance = None

    def __init__(self, version: str = "5.1.5"):
        super().__init__()
        self._version = version
        self._settings: dict = {}
        self._documents: list = []
        self._active = None
        self._window = None
        self.dock_factories: list = []
        self.extension_list: list = []

    @classmethod
    def instance(cls) -> Krita:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def reset(cls, version: str = "5.1.5", window: bool = False) -> Krita:
        cls._instance = cls(version)
        if window:
            cls._instance._window = Window()
        return cls._instance

    def version(self) -> str:
        return self._version

    def readSetting(self, group: str, name: str, default: str) -> str:  # noqa: N802
        return self._settings.get((group, name), default)

    def writeSetting(self, group: str, name: str, value: str) -> None:  # noqa: N802
        if not isinstance(value, str):
            raise TypeError("Krita settings are strings")
        self._settings[(group, name)] = value

    def createDocument(self, width, height, name, model, depth, profile, resolution):  # noqa: N802
        doc_class = Document52 if self._version >= "5.2" else Document
        doc = doc_class(width, height, name, model, depth, profile or _default_profile(depth),
                        resolution, self)
        self._documents.append(doc)
        return doc

    def documents(self) -> list:
        return list(self._documents)

    def activeDocument(self):  # noqa: N802
        return self._active

    def setActiveDocument(self, doc) -> None:  # noqa: N802
        self._active = doc

    def action(self, name):
        return None

    def activeWindow(self):  # noqa: N802
        return self._window

    def addDockWidgetFactory(self, factory) -> None:  # noqa: N802
        self.dock_factories.append(factory)

    def addExtension(self, extension) -> None:  # noqa: N802
        self.extension_list.append(extension)


def _default_profile(depth: str) -> str:
    return "sRGB-elle-V2-srgbtrc.icc" if depth == "U8" else "sRGB-elle-V2-g10.icc"


class Window(QObject):
    def __init__(self):
        super().__init__()
        self.actions: dict = {}
        self.views: list = []

    def createAction(self, name: str, text: str, menu_location: str = "tools/scripts"):  # noqa: N802
        action = QAction(text, self)
        action.setObjectName(name)
        self.actions[name] = action
        return action

    def addView(self, doc):  # noqa: N802
        self.views.append(doc)
        return doc


class Extension(QObject):
    def __init__(self, parent=None):
        super().__init__(parent)

    def setup(self):
        raise NotImplementedError

    def createActions(self, window):  # noqa: N802
        raise NotImplementedError


class DockWidget(QDockWidget):
    def canvas(self):
        return None

    def canvasChanged(self, canvas):  # noqa: N802
        raise NotImplementedError


class DockWidgetFactoryBase:
    DockTornOff, DockTop, DockBottom, DockRight, DockLeft, DockMinimized = range(6)

    def __init__(self, _id: str, position: int):
        self._id, self.position = _id, position

    def id(self) -> str:
        return self._id


class DockWidgetFactory(DockWidgetFactoryBase):
    def __init__(self, _id, position, klass):
        super().__init__(_id, position)
        self.klass = klass

    def createDockWidget(self):  # noqa: N802
        return self.klass()


class InfoObject:
    pass


class Selection:
    """A selection: one byte per pixel, 255 = selected; unbounded, like Krita's."""

    def __init__(self):
        self._pixels: dict = {}

    def select(self, x, y, w, h, value) -> None:
        for yy in range(y, y + h):
            for xx in range(x, x + w):
                self._set(xx, yy, value)

    def _set(self, x, y, value):
        if value:
            self._pixels[(x, y)] = value
        else:
            self._pixels.pop((x, y), None)

    def _bounds(self):
        if not self._pixels:
            return 0, 0, 0, 0
        xs = [p[0] for p in self._pixels]
        ys = [p[1] for p in self._pixels]
        return min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1

    def x(self):
        return self._bounds()[0]

    def y(self):
        return self._bounds()[1]

    def width(self):
        return self._bounds()[2]

    def height(self):
        return self._bounds()[3]

    def value(self, x, y) -> int:
        return self._pixels.get((x, y), 0)

    def pixelData(self, x, y, w, h) -> QByteArray:  # noqa: N802
        return QByteArray(bytes(self.value(xx, yy) for yy in range(y, y + h)
                                for xx in range(x, x + w)))

    def setPixelData(self, data, x, y, w, h) -> None:  # noqa: N802
        data = _bytes(data)
        for i, value in enumerate(data[:w * h]):
            self._set(x + i % w, y + i // w, value)

    def duplicate(self) -> Selection:
        copy = Selection()
        copy._pixels = dict(self._pixels)
        return copy


class Node(QObject):
    def __init__(self, doc, name: str, node_type: str):
        super().__init__()
        self._doc, self._name, self._type = doc, name, node_type
        self._pixels: dict = {}
        self._frames: list = []
        self._children: list = []
        self._parent = None
        self._visible = True
        self._blending = "normal"
        self._uuid = QUuid(str(uuid.uuid4()).join("{}"))
        self.selection: Selection | None = None

    def blendingMode(self) -> str:  # noqa: N802
        return self._blending

    def setBlendingMode(self, mode: str) -> None:  # noqa: N802
        self._blending = mode

    def remove(self) -> bool:
        if self._parent is None:
            return False
        self._parent._children.remove(self)
        self._parent = None
        return True

    def colorModel(self):  # noqa: N802
        return self._doc._model

    def colorDepth(self):  # noqa: N802
        return self._doc._depth

    def colorProfile(self):  # noqa: N802
        return self._doc._profile

    def name(self) -> str:
        return self._name

    def setName(self, name: str) -> None:  # noqa: N802
        self._name = name

    def type(self) -> str:
        return self._type

    def uniqueId(self) -> QUuid:  # noqa: N802
        return self._uuid

    def visible(self) -> bool:
        return self._visible

    def setVisible(self, visible: bool) -> None:  # noqa: N802
        self._visible = visible

    def animated(self) -> bool:
        return bool(self._frames)

    def parentNode(self):  # noqa: N802
        return self._parent

    def childNodes(self) -> list:  # noqa: N802
        return list(self._children)

    def addChildNode(self, child, above) -> bool:  # noqa: N802
        if child._parent is not None:
            raise RuntimeError("node already has a parent")
        if above is not None and above not in self._children:
            raise RuntimeError("'above' is not a child of this node")
        index = self._children.index(above) + 1 if above is not None else 0
        self._children.insert(index, child)
        child._parent = self
        return True

    def bounds(self) -> QRect:
        """Exact bounds of the non-transparent pixels, like Krita's."""
        painted = [p for p, value in self._pixels.items() if any(value)]
        if not painted:
            return QRect()
        xs = [p[0] for p in painted]
        ys = [p[1] for p in painted]
        return QRect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def _pixel_size(self) -> int:
        return PIXEL_SIZE[(self._doc._model, self._doc._depth)]

    def pixelData(self, x, y, w, h) -> QByteArray:  # noqa: N802
        size = self._pixel_size()
        empty = bytes(size)
        return QByteArray(b"".join(self._pixels.get((xx, yy), empty)
                                   for yy in range(y, y + h) for xx in range(x, x + w)))

    def projectionPixelData(self, x, y, w, h) -> QByteArray:  # noqa: N802
        if self._type == "grouplayer":
            return QByteArray(self._doc._composite(self._children, x, y, w, h))
        return self.pixelData(x, y, w, h)

    def setPixelData(self, data, x, y, w, h) -> None:  # noqa: N802
        data = _bytes(data)
        if self._type == "transparencymask":
            return  # Krita 5.1.5: such a mask has no selection, the data goes nowhere
        size = self._pixel_size()
        if len(data) < w * h * size:
            raise ValueError(f"setPixelData: {len(data)} bytes for {w}x{h}x{size}")
        for i in range(w * h):
            self._pixels[(x + i % w, y + i // w)] = data[i * size:(i + 1) * size]

    def setSelection(self, selection: Selection) -> None:  # noqa: N802 (TransparencyMask, 5.2)
        self.selection = selection.duplicate()

    def _alpha_mask(self, x, y) -> int:
        masks = [c for c in self._children if c._type == "transparencymask" and c._visible]
        value = 255
        for mask in masks:
            value = value * (mask.selection.value(x, y) if mask.selection else 0) // 255
        return value


class Document(QObject):
    def __init__(self, width, height, name, model, depth, profile, resolution, app):
        super().__init__()
        self._width, self._height, self._name = width, height, name
        self._model, self._depth, self._profile = model, depth, profile
        self._resolution = resolution
        self._app = app
        self._root = Node(self, "root", "grouplayer")
        self._selection: Selection | None = None
        self._active = None
        self._fps = 24
        self._clip = (0, 100)
        self.projection_refreshes = 0
        background = Node(self, "Background", "paintlayer")
        background.setPixelData(self._white() * (width * height), 0, 0, width, height)
        self._root.addChildNode(background, None)

    def _white(self) -> bytes:
        if self._depth in ("U8", "U16"):
            top = b"\xff" * (1 if self._depth == "U8" else 2)
            return top * (4 if self._model == "RGBA" else 2)
        fmt = "e" if self._depth == "F16" else "f"
        return struct.pack(f"={4 if self._model == 'RGBA' else 2}{fmt}", *[1.0] * 4)

    def name(self):
        return self._name

    def fileName(self):  # noqa: N802
        return ""

    def close(self):
        if self in self._app._documents:
            self._app._documents.remove(self)
        if self._app._active is self:
            self._app._active = None
        return True

    def setColorSpace(self, model, depth, profile):  # noqa: N802
        """Only what the stub can do exactly: integer sRGB RGBA between 8 and 16 bits."""
        srgb = "sRGB-elle-V2-srgbtrc.icc"
        if {self._profile, profile} != {srgb} or {self._model, model} != {"RGBA"}:
            raise NotImplementedError("the stub converts integer sRGB RGBA only")
        for node in _walk(self._root):
            for key, value in node._pixels.items():
                if self._depth == "U8" and depth == "U16":
                    value = bytes(b for v in value for b in (v, v))
                elif self._depth == "U16" and depth == "U8":
                    value = value[1::2]
                node._pixels[key] = value
        self._depth = depth
        return True

    def width(self):
        return self._width

    def height(self):
        return self._height

    def resolution(self):
        return int(self._resolution)

    def colorModel(self):  # noqa: N802
        return self._model

    def colorDepth(self):  # noqa: N802
        return self._depth

    def colorProfile(self):  # noqa: N802
        return self._profile

    def rootNode(self):  # noqa: N802
        return self._root

    def topLevelNodes(self):  # noqa: N802
        return self._root.childNodes()

    def activeNode(self):  # noqa: N802
        return self._active

    def setActiveNode(self, node):  # noqa: N802
        self._active = node

    def nodeByName(self, name):  # noqa: N802
        return _find(self._root, name)

    def selection(self):
        if self._selection is None or not self._selection._pixels:
            return None
        return self._selection.duplicate()

    def setSelection(self, selection):  # noqa: N802
        self._selection = selection.duplicate()
        if not any(n._type == "selectionmask" for n in self._root._children):
            mask = Node(self, "Selection Mask", "selectionmask")
            self._root._children.append(mask)
            mask._parent = self._root

    def createNode(self, name, node_type):  # noqa: N802
        return Node(self, name, node_type)

    def createGroupLayer(self, name):  # noqa: N802
        return Node(self, name, "grouplayer")

    def refreshProjection(self):  # noqa: N802
        self.projection_refreshes += 1

    def waitForDone(self):  # noqa: N802
        pass

    def setBatchmode(self, value):  # noqa: N802
        pass

    def pixelData(self, x, y, w, h) -> QByteArray:  # noqa: N802
        return QByteArray(self._composite(self._root._children, x, y, w, h))

    def _composite(self, nodes, x, y, w, h) -> bytes:
        """Visible paint and group layers, bottom up, blended ``normal`` or ``destination-in``
        (8-bit RGBA documents only)."""
        if (self._model, self._depth) != ("RGBA", "U8"):
            raise NotImplementedError("the stub merges 8-bit RGBA documents only")
        out = bytearray(w * h * 4)
        for layer in nodes:
            if not layer._visible or layer._type not in ("paintlayer", "grouplayer"):
                continue
            if layer._type == "grouplayer":
                source = layer.projectionPixelData(x, y, w, h).data()
                pixels = {(x + i % w, y + i // w): source[4 * i:4 * i + 4] for i in range(w * h)}
            else:
                pixels = layer._pixels
            for (px, py), (b, g, r, a) in pixels.items():
                if not (x <= px < x + w and y <= py < y + h):
                    continue
                i = ((py - y) * w + px - x) * 4
                if layer._blending == "destination-in":
                    out[i + 3] = out[i + 3] * a // 255
                    continue
                a = a * layer._alpha_mask(px, py) // 255
                for c, value in enumerate((b, g, r)):
                    out[i + c] = (value * a + out[i + c] * (255 - a) + 127) // 255
                out[i + 3] = a + out[i + 3] * (255 - a) // 255
            if layer._blending == "destination-in":
                for (px, py) in [(xx, yy) for yy in range(y, y + h) for xx in range(x, x + w)
                                 if (xx, yy) not in pixels]:
                    out[((py - y) * w + px - x) * 4 + 3] = 0
        return bytes(out)

    def resizeImage(self, x, y, w, h):  # noqa: N802
        """Like Krita: (x, y) of the old image becomes the new origin; layers move with it."""
        for node in _walk(self._root):
            node._pixels = {(px - x, py - y): v for (px, py), v in node._pixels.items()}
        if self._selection is not None:
            self._selection._pixels = {(px - x, py - y): v
                                       for (px, py), v in self._selection._pixels.items()}
        self._width, self._height = w, h

    def framesPerSecond(self):  # noqa: N802
        return self._fps

    def setFramesPerSecond(self, fps):  # noqa: N802
        self._fps = int(fps)

    def fullClipRangeEndTime(self):  # noqa: N802
        return self._clip[1]

    def setFullClipRangeEndTime(self, end):  # noqa: N802
        self._clip = (self._clip[0], int(end))

    def setFullClipRangeStartTime(self, start):  # noqa: N802
        self._clip = (int(start), self._clip[1])

    def importAnimation(self, files, first_frame, step):  # noqa: N802
        if self._app.activeWindow() is None:
            raise RuntimeError("importAnimation without a main window: Krita 5.1 segfaults here")
        node = Node(self, "Imported animation", "paintlayer")
        for path in files:
            image = QImage(path)
            if image.isNull():
                return False
            node._frames.append((path, image.width(), image.height()))
        self._root.addChildNode(node, self._root._children[-1] if self._root._children else None)
        return True


class Document52(Document):
    def createTransparencyMask(self, name):  # noqa: N802
        return Node(self, name, "transparencymask")


def _walk(node):
    yield node
    for child in node._children:
        yield from _walk(child)


def _find(node, name):
    return next((n for n in _walk(node) if n._name == name), None)
