"""The installed plug-in in real GIMP 3.0.4 (Debian trixie chroot, `gimp-console-3.0`) against a
live `aiedit serve` on 127.0.0.1. Prepare the chroot with `scripts/gimp-chroot.sh ensure`."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.gimp

REPO = Path(__file__).resolve().parents[3]
CHROOT = REPO / "scripts" / "gimp-chroot.sh"
INSIDE = "/aiedit-test"

PRELUDE = '''
import json, os, sys
from gi.repository import Gimp, Gegl, Gio, GLib
W = "/aiedit-test"
PLUGIN_DIR = W + "/home/.config/GIMP/3.0/plug-ins/aiedit"

def call(name, image, drawables, **args):
    proc = Gimp.get_pdb().lookup_procedure(name)
    if proc is None:
        raise RuntimeError(name + " is not registered: is the plug-in installed and executable?")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", drawables)
    for key, value in args.items():
        cfg.set_property(key, value)
    result = proc.run(cfg)
    if result.index(0) != Gimp.PDBStatusType.SUCCESS:
        raise RuntimeError(name + " failed: " + str(result.index(1)))
    return result

def load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))

def save(image, path):
    if not Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path), None):
        raise RuntimeError("could not save " + path)

def layers(image):
    out = []
    for layer in image.get_layers():
        _ok, x, y = layer.get_offsets()
        out.append({"name": layer.get_name(), "x": x, "y": y, "width": layer.get_width(),
                    "height": layer.get_height(), "mask": layer.get_mask() is not None})
    return out

def report(**data):
    with open(W + "/report.json", "w") as f:
        json.dump(data, f)
'''


@pytest.fixture(scope="session")
def gimp_chroot():
    done = subprocess.run([str(CHROOT), "ensure"], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        pytest.fail(f"the GIMP chroot is not available ({CHROOT} ensure):\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


class Gimp:
    """One GIMP profile (HOME) with the plug-in installed by `install_gimp`."""

    def __init__(self, work: Path):
        self.work = work
        plugins_dir = work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins"
        subprocess.run([str(Path(sys.executable).with_name("aiedit")), "plugins", "install",
                        "gimp", "--dest", str(plugins_dir)], check=True, capture_output=True)
        self.plugin = plugins_dir / "aiedit"

    def batch(self, code: str, display: str = "") -> dict:
        (self.work / "batch.py").write_text(PRELUDE + textwrap.dedent(code))
        binds = ["--bind", f"{self.work}:{INSIDE}"]
        if display:
            binds += ["--bind", "/tmp/.X11-unix:/tmp/.X11-unix"]
        done = subprocess.run(
            [str(CHROOT), "run", *binds, "--",
             "env", f"HOME={INSIDE}/home", f"DISPLAY={display}", "gimp-console-3.0", "-i",
             "--batch-interpreter=python-fu-eval",
             "-b", f'exec(open("{INSIDE}/batch.py").read())', "--quit"],
            capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"gimp-console exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                        f"{done.stderr[-3000:]}")
        return json.loads((self.work / "report.json").read_text())


@pytest.fixture
def gimp(gimp_chroot, tmp_path):
    return Gimp(tmp_path)


@pytest.fixture(scope="session")
def xvfb():
    """An X display for GIMP's dialogs (Xvfb from scripts/system-deps.sh)."""
    try:
        proc = subprocess.Popen(["Xvfb", "-displayfd", "1", "-nolisten", "tcp"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        pytest.fail("Xvfb is missing: run scripts/system-deps.sh (Debian package xvfb)")
    number = proc.stdout.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not start")
    yield f":{number.decode()}"
    proc.terminate()
    proc.wait(timeout=10)


def test_plugin_file_is_executable(gimp):
    assert (gimp.plugin / "aiedit.py").stat().st_mode & 0o111
    assert (gimp.plugin / "aiedit_client.py").is_file()


def test_inpaint_selection_in_real_gimp(gimp, live_server):
    source = Image.new("RGBA", (64, 48))
    source.putdata([((x * 4) % 256, (y * 5) % 256, 120, 255) for y in range(48) for x in range(64)])
    for y in range(18, 24):
        for x in range(24, 32):
            source.putpixel((x, y), (255, 0, 0, 255))
    source.save(gimp.work / "input.png")
    report = gimp.batch(f'''
        image = load(W + "/input.png")
        layer = image.get_layers()[0]
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 20, 15, 16, 12)
        call("plug-in-aiedit-inpaint", image, [layer], prompt="a red door",
             model="classic-telea", **{{"server-url": "{live_server.url}",
                                        "context-margin": 6}})
        open_group = image.undo_group_end()
        save(image, W + "/out.xcf")
        save(image, W + "/out.png")
        report(layers=layers(image), open_group=open_group)
    ''')
    assert [lay["name"] for lay in report["layers"]] == ["Inpaint: a red door", "Background"]
    new = report["layers"][0]
    assert (new["x"], new["y"], new["width"], new["height"]) == (14, 9, 28, 24)
    assert new["mask"] is True
    assert report["open_group"] is False, "the plug-in left an undo group open"
    assert (gimp.work / "out.xcf").read_bytes()[:8] == b"gimp xcf"
    before, after = source.load(), Image.open(gimp.work / "out.png").convert("RGBA").load()
    for y in range(48):
        for x in range(64):
            if not (20 <= x < 36 and 15 <= y < 27):
                assert after[x, y] == before[x, y], f"pixel ({x}, {y}) outside the selection"
    assert after[27, 20] != (255, 0, 0, 255), "the red square was not inpainted"


def test_upscale_of_a_float_image_into_a_new_image_in_real_gimp(gimp, live_server):
    Image.new("RGBA", (20, 16), (10, 200, 30, 255)).save(gimp.work / "small.png")
    report = gimp.batch(f'''
        image = load(W + "/small.png")
        image.convert_precision(Gimp.Precision.FLOAT_LINEAR)
        call("plug-in-aiedit-upscale", image, image.get_layers(), model="classic-lanczos",
             params='{{"scale": 2}}', **{{"server-url": "{live_server.url}"}})
        new = [i for i in Gimp.get_images() if i != image][0]
        save(new, W + "/big.png")
        report(size=[new.get_width(), new.get_height()], layers=layers(new),
               old=[image.get_width(), image.get_height()])
    ''')
    assert report["size"] == [40, 32] and report["old"] == [20, 16]
    with Image.open(gimp.work / "big.png") as big:
        assert big.size == (40, 32)
        pixel = big.convert("RGBA").getpixel((20, 16))
    assert all(abs(a - b) <= 1 for a, b in zip(pixel, (10, 200, 30, 255), strict=True)), pixel


def test_video_frames_become_animation_layers_in_real_gimp(gimp):
    report = gimp.batch('''
        sys.path.insert(0, PLUGIN_DIR)
        import aiedit_client as ac, aiedit_gimp as host
        image = Gimp.Image.new(8, 6, Gimp.ImageBaseType.RGB)
        base = Gimp.Layer.new(image, "Background", 8, 6, Gimp.ImageType.RGBA_IMAGE, 100.0,
                              Gimp.LayerMode.NORMAL)
        image.insert_layer(base, None, 0)
        frames = [(ac.Result(i, "image", 8, 6, 0, 0, 7, "/r/%d" % i),
                   ac.Pixels(8, 6, bytes((i * 60, 0, 0, 255)) * 48)) for i in range(3)]
        plan = host.Plan("video", "", {"fps": 25}, ac.Region(0, 0, 8, 6))
        host.insert_results(image, base, plan, host.Outcome({}, frames))
        top = image.get_layers()[0].get_buffer().get(Gegl.Rectangle.new(0, 0, 1, 1), 1.0,
                                                      "R'G'B'A u8", Gegl.AbyssPolicy.NONE)
        save(image, W + "/frames.xcf")
        report(layers=layers(image), top=list(top))
    ''')
    assert [lay["name"] for lay in report["layers"]] == [
        "Frame 3 (40ms) (replace)", "Frame 2 (40ms) (replace)", "Frame 1 (40ms) (replace)",
        "Background"]
    assert report["top"] == [120, 0, 0, 255]
    assert (gimp.work / "frames.xcf").read_bytes()[:8] == b"gimp xcf"


def test_dialog_builds_fields_from_the_server_schema_in_real_gimp(gimp, xvfb, live_server):
    report = gimp.batch(f'''
        sys.path.insert(0, PLUGIN_DIR)
        import gi
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
        import aiedit_client as ac, aiedit_dialog
        operation = ac.Client("{live_server.url}").operation("inpaint")
        procedure = Gimp.get_pdb().lookup_procedure("plug-in-aiedit-inpaint")
        config = procedure.create_config()
        config.set_property("params", '{{"strength": 0.25, "seed": 7}}')
        titles = []

        def press_ok():
            for window in Gtk.Window.list_toplevels():
                if hasattr(window, "response") and window.get_visible():
                    titles.append(window.get_title())
                    window.response(Gtk.ResponseType.OK)
            return True

        GLib.timeout_add(1000, press_ok)
        answered = aiedit_dialog.ask(procedure, config, operation)
        report(answered=answered, titles=titles, params=json.loads(config.get_property("params")),
               model=config.get_property("model"))
    ''', display=xvfb)
    assert report["answered"] is True
    assert len(report["titles"]) == 1, "one dialog, answered once"
    assert report["params"]["strength"] == 0.25 and report["params"]["seed"] == 7
    assert report["params"]["radius"] == 5, "schema defaults fill the other fields"
    assert "guidance" not in report["params"], "empty optional fields are left to the server"
    assert report["model"] == ""


@pytest.mark.ml
def test_no_layer_selected_in_real_gimp(gimp, tiny_server):
    """An image without layers: restore says what to select, generate adds a layer."""
    report = gimp.batch(f'''
        image = Gimp.Image.new(64, 64, Gimp.ImageBaseType.RGB)
        proc = Gimp.get_pdb().lookup_procedure("plug-in-aiedit-restore")
        cfg = proc.create_config()
        cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
        cfg.set_property("image", image)
        cfg.set_core_object_array("drawables", [])
        cfg.set_property("server-url", "{tiny_server.url}")
        refused = proc.run(cfg)
        call("plug-in-aiedit-generate", image, [], prompt="a red fox", model="tiny-sdxl",
             params='{{"seed": 7}}', **{{"server-url": "{tiny_server.url}"}})
        save(image, W + "/out.xcf")
        report(layers=layers(image), status=str(refused.index(0)),
               message=str(refused.index(1)))
    ''')
    assert "EXECUTION_ERROR" in report["status"], report
    assert ("Restore works on a layer and no layer is selected: select one in the Layers "
            "panel") in report["message"]
    assert report["layers"] == [{"name": "Generate: a red fox (seed 7)", "x": 0, "y": 0,
                                 "width": 64, "height": 64, "mask": False}]
    assert (gimp.work / "out.xcf").read_bytes()[:8] == b"gimp xcf"
