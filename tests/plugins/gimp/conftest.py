import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
for path in (HERE / "shim", REPO / "plugins" / "client", REPO / "plugins" / "gimp" / "aiedit"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture
def gimp(tmp_path):
    """The shim's Gimp module, with a fresh GIMP directory and no images."""
    from gi.repository import Gimp

    Gimp.STATE.update(directory=str(tmp_path / "gimp-dir"), images=[], progress=[],
                      messages=[], displays=[])
    return Gimp


@pytest.fixture(scope="session")
def plugin_entry():
    """The plug-in's main file (named aiedit.py like the server package, so loaded by path)."""
    import importlib.util

    name = "aiedit_gimp_entry"
    if name not in sys.modules:
        path = REPO / "plugins" / "gimp" / "aiedit" / "aiedit.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
