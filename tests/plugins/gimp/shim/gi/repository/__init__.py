from . import Gegl, Gimp, GimpUi, Gio, GLib, GObject, Gtk  # noqa: F401
