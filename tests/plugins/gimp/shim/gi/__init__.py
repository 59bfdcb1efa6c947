"""A stand-in for PyGObject with the parts of the GIMP 3 API the aiedit plug-in uses.

It behaves like the real thing where the plug-in could go wrong: ``Gimp.Selection.bounds``
returns six values, buffers return bytes sized by the requested format, writes reach the
drawable only after ``flush``, and every Gimp call must come from the main thread.
"""

VERSIONS = {}


def require_version(namespace, version):
    VERSIONS[namespace] = version
