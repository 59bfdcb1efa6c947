"""The parts of libgimp 3.0 the aiedit plug-in uses, in memory."""

import enum
import functools
import threading

from . import Gegl, GLib

STATE = {"directory": "/tmp/gimp-shim", "images": [], "progress": [], "messages": [],
         "displays": []}


def main_thread_only(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            raise AssertionError(f"libgimp is not thread-safe: {fn.__qualname__} called from "
                                 f"thread {threading.current_thread().name}")
        return fn(*args, **kwargs)
    return wrapper


class ImageBaseType(enum.IntEnum):
    RGB = 0
    GRAY = 1
    INDEXED = 2


class ImageType(enum.IntEnum):
    RGB_IMAGE = 0
    RGBA_IMAGE = 1
    GRAY_IMAGE = 2
    GRAYA_IMAGE = 3


class Precision(enum.IntEnum):
    U8_NON_LINEAR = 150
    U16_NON_LINEAR = 250
    FLOAT_LINEAR = 600


PARASITE_PERSISTENT = 1
PARASITE_UNDOABLE = 2


class Parasite:
    def __init__(self, name, flags, data):
        self.name, self.flags, self.data = name, flags, list(data)

    @classmethod
    def new(cls, name, flags, data):
        return cls(name, flags, data)

    def get_data(self):
        return list(self.data)


class ColorProfile:
    def __init__(self, label):
        self.label = label

    @classmethod
    def new_rgb_srgb(cls):
        return cls("sRGB built-in")

    def get_label(self):
        return self.label


class LayerMode(enum.IntEnum):
    NORMAL = 28


class AddMaskType(enum.IntEnum):
    WHITE = 0
    BLACK = 1
    ALPHA = 2
    ALPHA_TRANSFER = 3
    SELECTION = 4


class ChannelOps(enum.IntEnum):
    ADD = 0
    SUBTRACT = 1
    REPLACE = 2
    INTERSECT = 3


class PDBStatusType(enum.IntEnum):
    EXECUTION_ERROR = 0
    CALLING_ERROR = 1
    PASS_THROUGH = 2
    SUCCESS = 3
    CANCEL = 4


class RunMode(enum.IntEnum):
    INTERACTIVE = 0
    NONINTERACTIVE = 1
    WITH_LAST_VALS = 2


class PDBProcType(enum.IntEnum):
    INTERNAL = 0
    PLUGIN = 1
    PERSISTENT = 2
    TEMPORARY = 3


class ProcedureSensitivityMask(enum.IntFlag):
    DRAWABLE = 1 << 0
    DRAWABLES = 1 << 2
    NO_DRAWABLES = 1 << 3
    NO_IMAGE = 1 << 4
    ALWAYS = 0x7FFFFFFF


# ---------------------------------------------------------------- pixels


class Store:
    def __init__(self, width, height, fill=b"\0\0\0\0"):
        self.width, self.height = width, height
        self.data = bytearray(fill * (width * height))

    def copy(self):
        other = Store(self.width, self.height)
        other.data = bytearray(self.data)
        return other

    def pixel(self, x, y, abyss=Gegl.AbyssPolicy.NONE):
        if not (0 <= x < self.width and 0 <= y < self.height):
            if abyss != Gegl.AbyssPolicy.CLAMP:
                return b"\0\0\0\0"
            x, y = min(max(x, 0), self.width - 1), min(max(y, 0), self.height - 1)
        at = (y * self.width + x) * 4
        return bytes(self.data[at:at + 4])

    def put(self, x, y, px):
        if 0 <= x < self.width and 0 <= y < self.height:
            at = (y * self.width + x) * 4
            self.data[at:at + 4] = px

    def write(self, rect, channels, data):
        for row in range(rect.height):
            for col in range(rect.width):
                at = (row * rect.width + col) * channels
                chunk = data[at:at + channels]
                px = chunk if channels == 4 else bytes([chunk[0]] * 3 + [255])
                self.put(rect.x + col, rect.y + row, px)


class Item:
    def __init__(self, image, name, width, height, fill=b"\0\0\0\0"):
        self.image, self.name = image, name
        self.store = Store(width, height, fill)
        self.offsets = (0, 0)
        self.parent = None
        self.deleted = False
        self.updates = 0

    @main_thread_only
    def get_name(self):
        return self.name

    @main_thread_only
    def get_width(self):
        return self.store.width

    @main_thread_only
    def get_height(self):
        return self.store.height

    @main_thread_only
    def get_offsets(self):
        return (True, self.offsets[0], self.offsets[1])

    @main_thread_only
    def get_buffer(self):
        return Gegl.Buffer(self)

    @main_thread_only
    def update(self, x, y, width, height):
        self.updates += 1
        return True

    @main_thread_only
    def get_parent(self):
        return self.parent

    @main_thread_only
    def is_group(self):
        return False

    @main_thread_only
    def is_text_layer(self):
        return False

    @main_thread_only
    def delete(self):
        assert self.image is None or self not in self.image.layers, "delete an inserted item"
        self.deleted = True
        return True

    @main_thread_only
    def is_valid(self):
        return not self.deleted

    def _size(self):
        return (self.store.width, self.store.height)

    def _store_with(self, pending):
        if not pending:
            return self.store
        store = self.store.copy()
        for rect, channels, data in pending:
            store.write(rect, channels, data)
        return store

    def _commit(self, pending):
        for rect, channels, data in pending:
            self.store.write(rect, channels, data)


class Drawable(Item):
    pass


class Channel(Drawable):
    pass


class Selection(Channel):
    @staticmethod
    @main_thread_only
    def bounds(image):
        box = image.selection.box()
        if box is None:
            return (True, False, 0, 0, image.width, image.height)
        return (True, True) + box

    @staticmethod
    @main_thread_only
    def is_empty(image):
        return image.selection.box() is None

    def box(self):
        xs, ys = [], []
        for y in range(self.store.height):
            for x in range(self.store.width):
                if self.store.pixel(x, y)[0]:
                    xs.append(x)
                    ys.append(y)
        if not xs:
            return None
        return (min(xs), min(ys), max(xs) + 1, max(ys) + 1)


class LayerMask(Channel):
    def __init__(self, image, name, width, height, fill, layer):
        super().__init__(image, name, width, height, fill)
        self.layer = layer


class Layer(Drawable):
    def __init__(self, image, name, width, height, image_type):
        super().__init__(image, name, width, height)
        self.image_type = image_type
        self.mask = None

    @classmethod
    @main_thread_only
    def new(cls, image, name, width, height, image_type, opacity, mode):
        assert isinstance(image, Image) and isinstance(name, str)
        assert width > 0 and height > 0, "layers need a positive size"
        assert isinstance(image_type, ImageType)
        if image.base_type == ImageBaseType.RGB:
            assert image_type in (ImageType.RGB_IMAGE, ImageType.RGBA_IMAGE), image_type
        return cls(image, name, width, height, image_type)

    @classmethod
    @main_thread_only
    def new_from_visible(cls, image, dest_image, name):
        layer = cls(dest_image, name, image.width, image.height, ImageType.RGBA_IMAGE)
        layer.store = image.composite()
        return layer

    @staticmethod
    @main_thread_only
    def from_mask(mask):
        return mask.layer

    @main_thread_only
    def set_offsets(self, x, y):
        self.offsets = (x, y)
        return True

    @main_thread_only
    def create_mask(self, mask_type):
        mask = LayerMask(self.image, self.name + " mask", self.store.width, self.store.height,
                         b"\xff\xff\xff\xff", self)
        if mask_type == AddMaskType.SELECTION:
            ox, oy = self.offsets
            for y in range(self.store.height):
                for x in range(self.store.width):
                    mask.store.put(x, y, self.image.selection.store.pixel(x + ox, y + oy))
        elif mask_type != AddMaskType.WHITE:
            raise NotImplementedError(mask_type)
        return mask

    @main_thread_only
    def add_mask(self, mask):
        assert self.mask is None, "layer already has a mask"
        assert mask.layer is self
        self.mask = mask
        self.image.undo_log.append(("add_mask", self.name))
        return True

    @main_thread_only
    def get_mask(self):
        return self.mask


class GroupLayer(Layer):
    """A layer group: its size is its children's bounds, its pixels what they show; it has no
    pixels of its own to write."""

    def __init__(self, image, name):
        super().__init__(image, name, 1, 1, ImageType.RGBA_IMAGE)
        self.children = []

    @classmethod
    @main_thread_only
    def new(cls, image, name=None):
        assert isinstance(image, Image)
        return cls(image, name or "Layer Group")

    @main_thread_only
    def is_group(self):
        return True

    @main_thread_only
    def get_children(self):
        return list(self.children)

    def _bounds(self):
        boxes = [(c.offsets[0], c.offsets[1], c.offsets[0] + c._size()[0],
                  c.offsets[1] + c._size()[1]) for c in self.children]
        if not boxes:
            return (0, 0, 1, 1)
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    def _size(self):
        x0, y0, x1, y1 = self._bounds()
        return (x1 - x0, y1 - y0)

    @main_thread_only
    def get_width(self):
        return self._size()[0]

    @main_thread_only
    def get_height(self):
        return self._size()[1]

    @main_thread_only
    def get_offsets(self):
        x0, y0, _, _ = self._bounds()
        return (True, x0, y0)

    @main_thread_only
    def set_offsets(self, x, y):
        raise AssertionError("the shim does not move layer groups")

    def _store_with(self, pending):
        assert not pending, "a layer group's pixels cannot be written"
        x0, y0, x1, y1 = self._bounds()
        out = Store(x1 - x0, y1 - y0)
        _paint(out, self.children, -x0, -y0)
        return out

    def _commit(self, pending):
        raise AssertionError("a layer group's pixels cannot be written")

    @main_thread_only
    def create_mask(self, mask_type):
        raise AssertionError("the shim has no masks on layer groups")


class TextLayer(Layer):
    """A text layer; the shim does not render text: it paints an opaque block instead."""

    @classmethod
    @main_thread_only
    def new(cls, image, text, font, size, unit):
        layer = cls(image, text, max(1, len(text) * int(size) // 2), int(size),
                    ImageType.RGBA_IMAGE)
        layer.store = Store(layer.store.width, layer.store.height, b"\x10\x10\x10\xff")
        layer.text = text
        return layer

    @main_thread_only
    def is_text_layer(self):
        return True

    @main_thread_only
    def get_text(self):
        return self.text


class Image:
    def __init__(self, width, height, base_type):
        self.width, self.height, self.base_type = width, height, base_type
        self.layers = []
        self.selected = []
        self.selection = Selection(self, "selection", width, height)
        self.undo_depth = 0
        self.undo_groups = 0
        self.undo_log = []
        self.precision = Precision.U8_NON_LINEAR
        self.parasites = {}
        self.profile = None
        self.resolution = (72.0, 72.0)
        self.deleted = False
        STATE["images"].append(self)
        self.id = len(STATE["images"])

    @classmethod
    @main_thread_only
    def new(cls, width, height, base_type):
        return cls(width, height, base_type)

    @classmethod
    @main_thread_only
    def new_with_precision(cls, width, height, base_type, precision):
        image = cls(width, height, base_type)
        image.precision = precision
        return image

    @classmethod
    @main_thread_only
    def get_by_id(cls, image_id):
        return next((i for i in STATE["images"] if i.id == image_id), None)

    @main_thread_only
    def get_id(self):
        return self.id

    @main_thread_only
    def is_valid(self):
        return not self.deleted

    @main_thread_only
    def delete(self):
        self.deleted = True
        return True

    @main_thread_only
    def attach_parasite(self, parasite):
        self.parasites[parasite.name] = parasite
        self.undo_log.append(("parasite", parasite.name, self.undo_depth))
        return True

    @main_thread_only
    def detach_parasite(self, name):
        self.parasites.pop(name, None)
        return True

    @main_thread_only
    def remove_layer(self, layer):
        siblings = self.layers if layer.parent is None else layer.parent.children
        siblings.remove(layer)
        layer.deleted = True
        return True

    @main_thread_only
    def get_parasite(self, name):
        return self.parasites.get(name)

    @main_thread_only
    def get_color_profile(self):
        return self.profile

    @main_thread_only
    def set_color_profile(self, profile):
        self.profile = profile
        return True

    @main_thread_only
    def get_resolution(self):
        return (True, *self.resolution)

    @main_thread_only
    def set_resolution(self, xres, yres):
        self.resolution = (xres, yres)
        return True

    @main_thread_only
    def get_width(self):
        return self.width

    @main_thread_only
    def get_height(self):
        return self.height

    @main_thread_only
    def get_base_type(self):
        return self.base_type

    @main_thread_only
    def get_precision(self):
        return self.precision

    @main_thread_only
    def get_selection(self):
        return self.selection

    @main_thread_only
    def select_rectangle(self, op, x, y, width, height):
        assert op == ChannelOps.REPLACE
        self.selection.store = Store(self.width, self.height)
        for yy in range(y, y + height):
            for xx in range(x, x + width):
                self.selection.store.put(xx, yy, b"\xff\xff\xff\xff")
        return True

    @main_thread_only
    def insert_layer(self, layer, parent, position):
        assert layer.image is self, "layer belongs to another image"
        assert parent is None or isinstance(parent, GroupLayer), "parent must be a group"
        siblings = self.layers if parent is None else parent.children
        assert layer not in siblings
        siblings.insert(max(0, min(position, len(siblings))), layer)
        layer.parent = parent
        self.undo_log.append(("insert_layer", layer.name, self.undo_depth))
        return True

    @main_thread_only
    def get_item_position(self, item):
        siblings = self.layers if item.parent is None else item.parent.children
        return siblings.index(item)

    @main_thread_only
    def get_layers(self):
        return list(self.layers)

    @main_thread_only
    def get_selected_layers(self):
        return list(self.selected)

    @main_thread_only
    def undo_group_start(self):
        self.undo_depth += 1
        if self.undo_depth == 1:
            self.undo_groups += 1
        return True

    @main_thread_only
    def undo_group_end(self):
        assert self.undo_depth > 0, "undo_group_end without start"
        self.undo_depth -= 1
        return True

    @main_thread_only
    def resize(self, width, height, offx, offy):
        self.width, self.height = width, height
        for layer in _leaves(self.layers):
            layer.offsets = (layer.offsets[0] + offx, layer.offsets[1] + offy)
        self.selection.store = Store(width, height)
        self.undo_log.append(("resize", width, height, self.undo_depth))
        return True

    @main_thread_only
    def scale(self, width, height):
        fx, fy = width / self.width, height / self.height
        for layer in _leaves(self.layers):
            layer.offsets = (round(layer.offsets[0] * fx), round(layer.offsets[1] * fy))
            layer.store = Store(round(layer.store.width * fx), round(layer.store.height * fy))
        self.width, self.height = width, height
        self.selection.store = Store(width, height)
        self.undo_log.append(("scale", width, height, self.undo_depth))
        return True

    def composite(self):
        """Visible layers over transparency, masks applied (normal mode, 100 %)."""
        out = Store(self.width, self.height)
        _paint(out, self.layers, 0, 0)
        return out


def _leaves(layers):
    """Every layer that holds pixels, inside groups too."""
    for layer in layers:
        if isinstance(layer, GroupLayer):
            yield from _leaves(layer.children)
        else:
            yield layer


def _paint(out, layers, dx, dy):
    """Paint ``layers`` (top first, groups by their children) onto ``out``, shifted by dx/dy."""
    for layer in reversed(layers):
        if isinstance(layer, GroupLayer):
            _paint(out, layer.children, dx, dy)
            continue
        ox, oy = layer.offsets[0] + dx, layer.offsets[1] + dy
        for y in range(layer.store.height):
            for x in range(layer.store.width):
                src = layer.store.pixel(x, y)
                alpha = src[3]
                if layer.mask is not None:
                    alpha = alpha * layer.mask.store.pixel(x, y)[0] // 255
                if alpha:
                    out.put(x + ox, y + oy, _over(src, alpha, out.pixel(x + ox, y + oy)))


def _over(src, alpha, dst):
    a = alpha / 255
    out_a = a + dst[3] / 255 * (1 - a)
    if out_a == 0:
        return b"\0\0\0\0"
    channels = [round((src[i] * a + dst[i] * dst[3] / 255 * (1 - a)) / out_a) for i in range(3)]
    return bytes(channels + [round(out_a * 255)])


class Display:
    @classmethod
    @main_thread_only
    def new(cls, image):
        STATE["displays"].append(image)
        return cls()


@main_thread_only
def directory():
    return STATE["directory"]


@main_thread_only
def get_images():
    return [image for image in STATE["images"] if not image.deleted]


@main_thread_only
def progress_init(text):
    STATE["progress"].append(("init", text))
    return True


@main_thread_only
def progress_set_text(text):
    STATE["progress"].append(("text", text))
    return True


@main_thread_only
def progress_update(fraction):
    assert 0.0 <= fraction <= 1.0
    STATE["progress"].append(("update", fraction))
    return True


@main_thread_only
def progress_pulse():
    STATE["progress"].append(("pulse",))
    return True


@main_thread_only
def displays_flush():
    return True


@main_thread_only
def message(text):
    STATE["messages"].append(text)
    return True


# ---------------------------------------------------------------- procedures


class Choice:
    def __init__(self):
        self.nicks = []

    @classmethod
    def new(cls):
        return cls()

    def add(self, nick, ident, label, help_text):
        self.nicks.append(nick)


class ValueArray:
    def __init__(self, values):
        self.values = values

    def index(self, n):
        return self.values[n]


class ProcedureConfig:
    def __init__(self, procedure):
        self.procedure = procedure
        self.values = {name: default for name, default in procedure.arguments.items()}
        self.values.update({"run-mode": RunMode.NONINTERACTIVE, "image": None, "drawables": []})

    def find_property(self, name):
        return name if name in self.values else None

    def get_property(self, name):
        if name not in self.values:
            raise TypeError(f"object of type 'GimpProcedureConfig' does not have property "
                            f"'{name}'")
        return self.values[name]

    def set_property(self, name, value):
        self.get_property(name)
        if name in self.procedure.choices and value not in self.procedure.choices[name]:
            raise ValueError(f"{name}: {value!r} is not one of {self.procedure.choices[name]}")
        self.values[name] = value

    def set_core_object_array(self, name, values):
        self.set_property(name, list(values))


class Procedure:
    def __init__(self, plug_in, name, proc_type, run_func, run_data):
        self.name, self.run_func, self.run_data = name, run_func, run_data
        self.arguments = {}
        self.choices = {}
        self.menu_paths = []
        self.menu_label = None
        self.image_types = None
        self.sensitivity = None

    @classmethod
    def new(cls, plug_in, name, proc_type, run_func, run_data):
        return cls(plug_in, name, proc_type, run_func, run_data)

    def set_image_types(self, types):
        self.image_types = types

    def set_sensitivity_mask(self, mask):
        self.sensitivity = mask

    def set_menu_label(self, label):
        self.menu_label = label

    def add_menu_path(self, path):
        self.menu_paths.append(path)

    def set_documentation(self, blurb, help_text, help_id):
        self.blurb = blurb

    def set_attribution(self, authors, copyright_, date):
        pass

    def _add(self, name, default):
        assert name not in self.arguments, f"argument {name} added twice"
        self.arguments[name] = default

    def add_string_argument(self, name, nick, blurb, default, flags):
        assert isinstance(default, str)
        self._add(name, default)

    def add_int_argument(self, name, nick, blurb, minimum, maximum, default, flags):
        assert minimum <= default <= maximum
        self._add(name, default)

    def add_choice_argument(self, name, nick, blurb, choice, default, flags):
        assert default in choice.nicks
        self.choices[name] = choice.nicks
        self._add(name, default)

    def create_config(self):
        return ProcedureConfig(self)

    def new_return_values(self, status, error):
        assert isinstance(error, GLib.Error)
        return ValueArray([status, error])

    def run(self, config):
        """Like ``Gimp.Procedure.run``: status first, then the GLib.Error."""
        return self.run_func(self, config.values["run-mode"], config.values["image"],
                             config.values["drawables"], config, self.run_data)


class ImageProcedure(Procedure):
    pass


class PlugIn:
    __gtype__ = "GimpPlugIn"


def main(gtype, argv):
    raise RuntimeError("the shim does not run plug-in processes")
