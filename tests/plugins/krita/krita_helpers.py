"""Helpers for the real-Krita tests: environment, profile cache, running Krita."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
KRITARUNNER_SCRIPTS = HERE / "kritarunner"
CACHE = Path(os.environ.get("AIEDIT_CACHE", Path.home() / ".cache" / "aiedit"))
PROFILE_CACHE = CACHE / "krita-5.1-profile"
SYSTEM_PYTHON = "/usr/bin/python3"
MISSING = ("Krita is not installed: run scripts/system-deps.sh (Debian packages krita "
           "python3-pyqt5 python3-sip xvfb xauth)")


# -- real Krita ---------------------------------------------------------------------------------

def krita_env(home: Path, pythonpath: list[Path] = ()) -> dict:
    # QT_* too: importing OpenCV's Qt build points QT_QPA_PLATFORM_PLUGIN_PATH at its own plugins
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "XDG_", "QT_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_RUNTIME_DIR=str(home / "run"),
               QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath),
               TMPDIR=str(home / "tmp"))  # Krita's swap files go with the test's folder
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if ".venv" not in p and ".pyenv" not in p)
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / "tmp").mkdir(parents=True, exist_ok=True, mode=0o700)
    return env


def require_krita() -> None:
    if not shutil.which("kritarunner") or not Path(SYSTEM_PYTHON).exists():
        pytest.fail(MISSING)


def build_profile_cache() -> None:
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
    shutil.rmtree(building / "tmp", ignore_errors=True)
    marker.unlink()
    building.rename(PROFILE_CACHE)


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
    # The QPainter canvas: OpenGL under Xvfb is Mesa's software rasterizer, slow enough on a
    # loaded machine to run the test out of time.
    (home / ".config").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "kritadisplayrc").write_text("OpenGLRenderer=none\n")
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
    # not the plugins nor the docker's journal and history of that run
    shutil.copytree(resources, cached,
                    ignore=shutil.ignore_patterns("pykrita", "aiedit", "*.log"))
