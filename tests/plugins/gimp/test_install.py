"""`aiedit plugins install gimp`: folders per platform, executable bit, the zip."""

import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from aiedit.plugins_install import (
    MARKER,
    InstallRefused,
    build_zip,
    gimp_plugins_dir,
    install_gimp,
    install_krita,
)

AIEDIT = Path(sys.executable).with_name("aiedit")


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
    folder = install_gimp(tmp_path)
    assert folder == tmp_path / "aiedit"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [MARKER, "aiedit.py", "aiedit_browser.py", "aiedit_client.py",
                     "aiedit_dialog.py", "aiedit_gimp.py"]
    assert (folder / "aiedit.py").stat().st_mode & stat.S_IXUSR
    assert (folder / "aiedit.py").read_text().startswith("#!/usr/bin/env python3")


def test_zip_keeps_the_executable_bit(tmp_path):
    path = build_zip("gimp", tmp_path)
    with zipfile.ZipFile(path) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert set(modes) == {"aiedit/aiedit.py", "aiedit/aiedit_browser.py",
                          "aiedit/aiedit_client.py", "aiedit/aiedit_dialog.py",
                          "aiedit/aiedit_gimp.py"}
    assert modes["aiedit/aiedit.py"] & stat.S_IXUSR
    assert not modes["aiedit/aiedit_gimp.py"] & stat.S_IXUSR


def test_reinstall_replaces_a_folder_that_holds_the_marker(tmp_path):
    folder = install_gimp(tmp_path)
    (folder / "stale.py").write_text("from an older version")
    assert install_gimp(tmp_path) == folder
    assert not (folder / "stale.py").exists()
    assert (folder / MARKER).is_file()


@pytest.mark.parametrize("install", [install_gimp, install_krita])
def test_install_refuses_to_delete_a_folder_that_is_not_the_plugin(tmp_path, install):
    kwargs = {"enable": False} if install is install_krita else {}
    theirs = tmp_path / "aiedit"
    (theirs / "sub").mkdir(parents=True)
    (theirs / "aiedit.py").write_text("someone else's plug-in")
    (theirs / "sub" / "notes.txt").write_text("keep me")
    with pytest.raises(InstallRefused, match=f"{theirs} exists and is not an aiedit plug-in "
                                             f"folder \\(it has no {MARKER} file\\)"):
        install(tmp_path, **kwargs)
    assert (theirs / "aiedit.py").read_text() == "someone else's plug-in"
    assert (theirs / "sub" / "notes.txt").read_text() == "keep me"
    assert not (theirs / MARKER).exists()


def test_install_refuses_a_file_or_symlink_in_the_plugins_place(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "precious.txt").write_text("keep")
    (tmp_path / "aiedit").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InstallRefused):
        install_gimp(tmp_path)
    assert (tmp_path / "elsewhere" / "precious.txt").read_text() == "keep"


def test_install_upgrades_a_folder_from_before_the_marker(tmp_path):
    folder = tmp_path / "aiedit"
    (folder / "__pycache__").mkdir(parents=True)
    for name in ("aiedit.py", "aiedit_client.py", "aiedit_gimp.py"):
        (folder / name).write_text("# old version")
    (folder / "__pycache__" / "aiedit_gimp.cpython-312.pyc").write_bytes(b"old")
    install_gimp(tmp_path)
    assert (folder / "aiedit.py").read_text().startswith("#!/usr/bin/env python3")
    assert not (folder / "__pycache__").exists() and (folder / MARKER).is_file()


def test_cli_refusal_is_a_clear_message(tmp_path):
    (tmp_path / "aiedit").mkdir()
    (tmp_path / "aiedit" / "mine.txt").write_text("keep")
    done = subprocess.run([str(AIEDIT), "plugins", "install", "gimp", "--dest", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"Error: {tmp_path / 'aiedit'} exists and is not an aiedit plug-in folder" in (
        done.stderr)
    assert (tmp_path / "aiedit" / "mine.txt").read_text() == "keep"
