"""Fixtures for the Krita plugin tests.

Fast tests load the installed plugin against the ``krita`` stub module (``stubs/krita.py``).
Real-Krita tests (marker ``krita``) run Debian's Krita with a profile cached under
``~/.cache/aiedit/`` (the first run builds Krita's resource database, about 20 s).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
from krita_helpers import HERE, PROFILE_CACHE, build_profile_cache, require_krita

from aiedit.plugins_install import install_krita
from tests.helpers import cache_lock

# -- the plugin against the stub ----------------------------------------------------------------

@pytest.fixture(scope="session")
def krita_stub():
    """The stub ``krita`` module, registered as ``krita`` for the plugin to import."""
    spec = importlib.util.spec_from_file_location("krita", HERE / "stubs" / "krita.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["krita"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def qapp():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5.QtWidgets import QApplication

    return QApplication.instance() or QApplication(["aiedit-tests"])


@pytest.fixture(scope="session")
def plugin(tmp_path_factory, krita_stub, qapp):
    """The plugin as ``aiedit plugins install krita`` lays it out (client bundled), imported
    under the name ``aiedit_krita`` (the server package already owns ``aiedit`` here)."""
    pykrita = tmp_path_factory.mktemp("pykrita")
    folder = install_krita(pykrita, enable=False)
    spec = importlib.util.spec_from_file_location(
        "aiedit_krita", folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["aiedit_krita"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def krita_app(krita_stub, plugin):
    """A fresh stub ``Krita.instance()`` for each test (documents, settings)."""
    krita_stub.Krita.reset()
    return krita_stub.Krita.instance()


@pytest.fixture
def krita_home(tmp_path) -> Path:
    """A HOME with a ready Krita profile (copied from the cache, built on first use)."""
    require_krita()
    with cache_lock("krita-profile"):
        if not PROFILE_CACHE.is_dir():
            build_profile_cache()
    home = tmp_path / "home"
    shutil.copytree(PROFILE_CACHE, home, symlinks=True)
    return home
