"""Fixtures for the Krita plugin tests.

Fast tests load the installed plugin against the ``krita`` stub module (``stubs/krita.py``).
Real-Krita tests (marker ``krita``) run Debian's Krita with a profile cached under
``~/.cache/aiedit/`` (the first run builds Krita's resource database, about 20 s).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiedit.plugins_install import install_krita

HERE = Path(__file__).resolve().parent
KRITARUNNER_SCRIPTS = HERE / "kritarunner"
CACHE = Path(os.environ.get("AIEDIT_CACHE", Path.home() / ".cache" / "aiedit"))
PROFILE_CACHE = CACHE / "krita-5.1-profile"
SYSTEM_PYTHON = "/usr/bin/python3"
MISSING = ("Krita is not installed: run scripts/system-deps.sh (Debian packages krita "
           "python3-pyqt5 python3-sip xvfb xauth)")


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


# -- real Krita ---------------------------------------------------------------------------------

def krita_env(home: Path, pythonpath: list[Path] = ()) -> dict:
    # QT_* too: importing OpenCV's Qt build points QT_QPA_PLATFORM_PLUGIN_PATH at its own plugins
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "XDG_", "QT_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_RUNTIME_DIR=str(home / "run"),
               QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if ".venv" not in p and ".pyenv" not in p)
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    return env


def _require_krita() -> None:
    if not shutil.which("kritarunner") or not Path(SYSTEM_PYTHON).exists():
        pytest.fail(MISSING)


def _build_profile_cache() -> None:
    """Run kritarunner once so it builds its resource database, and keep that profile."""
    building = PROFILE_CACHE.with_name(PROFILE_CACHE.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    (building / "scripts").mkdir(parents=True)
    (building / "scripts" / "aiedit_profile_probe.py").write_text(
        "def __main__(args):\n    open(args[0], 'w').write('ok')\n")
    marker = building / "probe.txt"
    subprocess.run(["kritarunner", "-s", "aiedit_profile_probe", str(marker)],
                   env=krita_env(building, [building / "scripts"]), timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not marker.exists():
        pytest.fail(f"kritarunner did not run a script while building its profile in {building}")
    shutil.rmtree(building / "scripts")
    marker.unlink()
    building.rename(PROFILE_CACHE)


@pytest.fixture
def krita_home(tmp_path) -> Path:
    """A HOME with a ready Krita profile (copied from the cache, built on first use)."""
    _require_krita()
    if not PROFILE_CACHE.is_dir():
        _build_profile_cache()
    home = tmp_path / "home"
    shutil.copytree(PROFILE_CACHE, home, symlinks=True)
    return home


def run_kritarunner(home: Path, pythonpath: list[Path], module: str, *args,
                    timeout: float = 180) -> subprocess.CompletedProcess:
    """kritarunner -s MODULE args... (it always exits 0: callers assert on files it writes)."""
    return subprocess.run(["kritarunner", "-s", module, *map(str, args)],
                          env=krita_env(home, pythonpath), timeout=timeout,
                          capture_output=True, text=True, check=False)


def run_krita_gui(home: Path, extra_env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    """``xvfb-run krita --nosplash`` with ``home`` as the profile (the GUI keeps its resource
    database in ``.local/share/krita``; after a first run it is cached with the profile)."""
    if not shutil.which("xvfb-run") or not shutil.which("krita"):
        pytest.fail(MISSING)
    env = krita_env(home)
    env.pop("QT_QPA_PLATFORM")
    env.update(extra_env)
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "krita",
                           "--nosplash"], env=env, timeout=timeout, capture_output=True,
                          text=True, check=False)
    _cache_gui_resources(home)
    return proc


def _cache_gui_resources(home: Path) -> None:
    resources = home / ".local" / "share" / "krita"
    cached = PROFILE_CACHE / ".local" / "share" / "krita"
    if cached.exists() or not (resources / "resourcecache.sqlite").exists():
        return
    shutil.copytree(resources, cached, ignore=shutil.ignore_patterns("pykrita", "*.log"))
