"""Install the editor plug-ins into the user's editor folders, and build their zips.

Each host has a layout: the files to copy, with their place inside the host's plug-in folder.
The shared client (``plugins/client/aiedit_client.py``) is bundled into every host's folder,
since editors' Pythons cannot install packages.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import zipfile
from pathlib import Path

from aiedit import __version__

EXECUTABLE = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
GIMP_PLUGIN = "aiedit"


def plugins_source() -> Path:
    """The plug-ins' sources: bundled in the installed package (``aiedit/_plugins``, put there
    when the wheel is built), else the source tree's ``plugins/`` folder (a development
    checkout)."""
    here = Path(__file__).resolve().parent
    for root in (here / "_plugins", here.parents[1] / "plugins"):
        if (root / "client" / "aiedit_client.py").is_file():
            return root
    raise FileNotFoundError(
        f"plug-in sources not found (neither in {here / '_plugins'} nor in a source tree): "
        "this aiedit installation lacks them; reinstall aiedit from its wheel "
        "(pip install --force-reinstall aiedit) or from its source tree (pip install -e .)"
    )


def client_file() -> Path:
    return plugins_source() / "client" / "aiedit_client.py"


def user_config_dir(
    platform: str | None = None, env: dict | None = None, home: Path | None = None
) -> Path:
    """Where applications keep per-user settings: %APPDATA%, ~/Library/Application Support,
    or $XDG_CONFIG_HOME (default ~/.config)."""
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = home or Path.home()
    if platform.startswith("win"):
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    if platform == "darwin":
        return home / "Library" / "Application Support"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config")


# ---------------------------------------------------------------- GIMP


def gimp_plugins_dir(
    platform: str | None = None, env: dict | None = None, home: Path | None = None
) -> Path:
    """GIMP 3's per-user plug-ins folder (``$GIMP3_DIRECTORY/plug-ins`` when that is set)."""
    env = os.environ if env is None else env
    if env.get("GIMP3_DIRECTORY"):
        return Path(env["GIMP3_DIRECTORY"]) / "plug-ins"
    return user_config_dir(platform, env, home) / "GIMP" / "3.0" / "plug-ins"


def gimp_files() -> list[tuple[Path, str, bool]]:
    """(source, path inside the plug-ins folder, executable) for the GIMP plug-in."""
    source = plugins_source() / "gimp" / GIMP_PLUGIN
    files = [
        (path, f"{GIMP_PLUGIN}/{path.name}", path.name == f"{GIMP_PLUGIN}.py")
        for path in sorted(source.glob("*.py"))
    ]
    files.append((client_file(), f"{GIMP_PLUGIN}/aiedit_client.py", False))
    return files


def install_gimp(dest: Path | str | None = None) -> Path:
    """Install the GIMP 3 plug-in into ``dest`` (default: the user's GIMP 3 plug-ins folder);
    returns the plug-in's folder. The main file is made executable: GIMP ignores it otherwise."""
    dest = Path(dest) if dest else gimp_plugins_dir()
    return install_files(gimp_files(), dest, replace=GIMP_PLUGIN)


# ---------------------------------------------------------------- shared


LAYOUTS = {"gimp": gimp_files}


MARKER = ".aiedit-plugin"


class InstallRefused(Exception):
    """The destination holds something that is not an aiedit plug-in: nothing was changed."""


def install_files(files: list[tuple[Path, str, bool]], dest: Path, replace: str) -> Path:
    """Copy ``files`` under ``dest``, first removing an older ``dest/replace`` folder, and
    mark the folder as ours with ``MARKER``.

    ``dest/replace`` is removed only when it is an aiedit plug-in: it holds the marker, or
    (installs made before the marker existed) nothing but files this install writes. Anything
    else there raises ``InstallRefused`` and is left untouched.
    """
    target = dest / replace
    if target.exists() or target.is_symlink():
        _check_replaceable(target, files, dest)
        shutil.rmtree(target)
    for source, inside, executable in files:
        path = dest / inside
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        path.chmod(EXECUTABLE if executable else 0o644)
    marker = target / MARKER
    marker.write_text(
        f"aiedit {__version__}: this folder is the aiedit plug-in; `aiedit plugins install` "
        "replaces it whole.\n",
        encoding="utf-8",
    )
    marker.chmod(0o644)
    return target


def _check_replaceable(target: Path, files: list[tuple[Path, str, bool]], dest: Path) -> None:
    refuse = (
        f"{target} exists and is not an aiedit plug-in folder (it has no {MARKER} file); "
        "nothing was changed. Move it away or delete it yourself, or install elsewhere "
        "with --dest"
    )
    if target.is_symlink() or not target.is_dir():
        raise InstallRefused(refuse)
    if (target / MARKER).is_file():
        return
    ours = {(dest / inside).relative_to(target).as_posix() for _, inside, _ in files
            if (dest / inside).is_relative_to(target)}
    for path in target.rglob("*"):
        relative = path.relative_to(target)
        if "__pycache__" in relative.parts:
            continue
        if path.is_symlink() or (path.is_file() and relative.as_posix() not in ours):
            raise InstallRefused(refuse)
        if path.is_dir() and not any(name.startswith(relative.as_posix() + "/") for name in ours):
            raise InstallRefused(refuse)


def build_zip(host: str, out_dir: Path | str) -> Path:
    """``out_dir/aiedit-<host>-<version>.zip`` with the host's files, executable bits kept."""
    if host not in LAYOUTS:
        raise ValueError(f"unknown host '{host}': choose one of {', '.join(sorted(LAYOUTS))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"aiedit-{host}-{__version__}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, inside, executable in LAYOUTS[host]():
            info = zipfile.ZipInfo(inside, date_time=(2025, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | (EXECUTABLE if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    return path


# ---------------------------------------------------------------- Krita

KRITA_PLUGIN = "aiedit"


def krita_resources_dir(
    platform: str | None = None, env: dict | None = None, home: Path | None = None
) -> Path:
    """Krita's per-user resource folder: %APPDATA%\\krita, ~/Library/Application Support/krita
    or $XDG_DATA_HOME/krita (default ~/.local/share/krita)."""
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = home or Path.home()
    if platform.startswith("win") or platform == "darwin":
        return user_config_dir(platform, env, home) / "krita"
    return Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "krita"


def krita_pykrita_dir(
    platform: str | None = None, env: dict | None = None, home: Path | None = None
) -> Path:
    """Where Krita looks for the user's Python plugins."""
    return krita_resources_dir(platform, env, home) / "pykrita"


def kritarc_path(
    platform: str | None = None, env: dict | None = None, home: Path | None = None
) -> Path:
    """Krita's settings file: %LOCALAPPDATA%\\kritarc, ~/Library/Preferences/kritarc or
    $XDG_CONFIG_HOME/kritarc (default ~/.config/kritarc)."""
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = home or Path.home()
    if platform.startswith("win"):
        return Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / "kritarc"
    if platform == "darwin":
        return home / "Library" / "Preferences" / "kritarc"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kritarc"


def krita_files() -> list[tuple[Path, str, bool]]:
    """(source, path inside pykrita, executable) for the Krita plugin, client bundled in."""
    source = plugins_source() / "krita"
    package = source / KRITA_PLUGIN
    files = [(source / f"{KRITA_PLUGIN}.desktop", f"{KRITA_PLUGIN}.desktop", False)]
    files += [
        (path, f"{KRITA_PLUGIN}/{path.relative_to(package).as_posix()}", False)
        for path in sorted(package.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    files.append((client_file(), f"{KRITA_PLUGIN}/aiedit_client.py", False))
    return files


def install_krita(
    dest: Path | str | None = None, enable: bool = True, kritarc: Path | str | None = None
) -> Path:
    """Install the Krita plugin into ``dest`` (default: the user's pykrita folder) and, with
    ``enable``, switch it on in ``kritarc`` (default: the user's). Returns the plugin's folder;
    Krita loads it at its next start."""
    dest = Path(dest) if dest else krita_pykrita_dir()
    target = install_files(krita_files(), dest, replace=KRITA_PLUGIN)
    if enable:
        enable_krita_plugin(Path(kritarc) if kritarc else kritarc_path())
    return target


def enable_krita_plugin(kritarc: Path, name: str = KRITA_PLUGIN) -> None:
    """Set ``enable_<name>=true`` in the ``[python]`` group of kritarc, keeping every other
    line as it was (kritarc is KConfig, not quite what configparser writes)."""
    lines = kritarc.read_text(encoding="utf-8").splitlines() if kritarc.is_file() else []
    key = f"enable_{name}"
    start = next((i for i, line in enumerate(lines) if line.strip() == "[python]"), None)
    if start is None:
        lines += ([""] if lines and lines[-1].strip() else []) + ["[python]", f"{key}=true"]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines)
        )
        found = [i for i in range(start + 1, end) if lines[i].split("=", 1)[0].strip() == key]
        if found:
            lines[found[0]] = f"{key}=true"
        else:
            lines.insert(start + 1, f"{key}=true")
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    kritarc.write_text("\n".join(lines) + "\n", encoding="utf-8")


LAYOUTS["krita"] = krita_files
