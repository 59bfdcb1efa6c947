"""`aiedit plugins install gimp`: folders per platform, executable bit, the zip."""

import stat
import zipfile
from pathlib import Path

from aiedit.plugins_install import build_zip, gimp_plugins_dir, install_gimp


def test_gimp_plugins_dir_per_platform():
    home = Path("/home/ann")
    assert gimp_plugins_dir("linux", {}, home) == home / ".config/GIMP/3.0/plug-ins"
    assert gimp_plugins_dir("linux", {"XDG_CONFIG_HOME": "/cfg"}, home) == Path(
        "/cfg/GIMP/3.0/plug-ins")
    assert gimp_plugins_dir("darwin", {}, home) == home / (
        "Library/Application Support/GIMP/3.0/plug-ins")
    assert gimp_plugins_dir("win32", {"APPDATA": "C:/Users/ann/AppData/Roaming"}, home) == Path(
        "C:/Users/ann/AppData/Roaming/GIMP/3.0/plug-ins")
    assert gimp_plugins_dir("linux", {"GIMP3_DIRECTORY": "/g"}, home) == Path("/g/plug-ins")


def test_install_makes_the_main_file_executable_and_bundles_the_client(tmp_path):
    (tmp_path / "aiedit").mkdir()
    (tmp_path / "aiedit" / "stale.py").write_text("old")
    folder = install_gimp(tmp_path)
    assert folder == tmp_path / "aiedit"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["aiedit.py", "aiedit_client.py", "aiedit_dialog.py", "aiedit_gimp.py"]
    assert (folder / "aiedit.py").stat().st_mode & stat.S_IXUSR
    assert (folder / "aiedit.py").read_text().startswith("#!/usr/bin/env python3")


def test_zip_keeps_the_executable_bit(tmp_path):
    path = build_zip("gimp", tmp_path)
    with zipfile.ZipFile(path) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert set(modes) == {"aiedit/aiedit.py", "aiedit/aiedit_client.py",
                          "aiedit/aiedit_dialog.py", "aiedit/aiedit_gimp.py"}
    assert modes["aiedit/aiedit.py"] & stat.S_IXUSR
    assert not modes["aiedit/aiedit_gimp.py"] & stat.S_IXUSR
