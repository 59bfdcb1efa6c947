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
        self.binds = []  # more --bind HOST:INSIDE pairs for the chroot
        plugins_dir = work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins"
        subprocess.run([str(Path(sys.executable).with_name("aiedit")), "plugins", "install",
                        "gimp", "--dest", str(plugins_dir)], check=True, capture_output=True)
        self.plugin = plugins_dir / "aiedit"

    def batch(self, code: str, display: str = "") -> dict:
        (self.work / "batch.py").write_text(PRELUDE + textwrap.dedent(code))
        binds = ["--bind", f"{self.work}:{INSIDE}", *self.binds]
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


def run_batch(gimp, code: str, **values) -> dict:
    """``gimp.batch`` of HOST and ``code`` with ``{NAME}`` placeholders filled (the code holds
    JSON braces)."""
    code = HOST + textwrap.dedent(code)
    for name, value in values.items():
        code = code.replace("{" + name + "}", str(value))
    return gimp.batch(code)


HOST = '''
sys.path.insert(0, PLUGIN_DIR)
import struct
import aiedit_client as ac, aiedit_gimp as host

class Quiet:
    def show(self, job):
        pass

    def tick(self):
        pass

def native(drawable):
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return bytes(drawable.get_buffer().get(rect, 1.0, None, Gegl.AbyssPolicy.NONE))

def new_layer(image, name, w, h, rgba8):
    layer = Gimp.Layer.new(image, name, w, h, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.get_buffer().set(Gegl.Rectangle.new(0, 0, w, h), "R'G'B'A u8", rgba8)
    layer.get_buffer().flush()
    return layer

def run_job(client, op_id, image, layer, params, model=""):
    plan = host.plan_job(client.operation(op_id), image, layer, "", model, params)
    return plan, host.execute(client, plan, Quiet(), record=False, watchdog=False)
'''


def test_adobe_rgb_16_bit_round_trip_in_real_gimp(gimp, live_server):
    """Adobe RGB (1998), 16-bit: the server gets sRGB converted by GEGL from the image's
    profile; the identity job's result layer comes back in the image's profile and precision
    within 1 code value in 8-bit terms; the base layer is untouched."""
    report = run_batch(gimp, '''
        W_, H_ = 64, 32
        image = Gimp.Image.new_with_precision(W_, H_, Gimp.ImageBaseType.RGB,
                                              Gimp.Precision.U16_NON_LINEAR)
        image.set_color_profile(Gimp.ColorProfile.new_rgb_adobe())
        layer = Gimp.Layer.new(image, "Background", W_, H_, Gimp.ImageType.RGBA_IMAGE, 100.0,
                               Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, None, 0)
        srgb = []
        for y in range(H_):
            for x in range(W_):
                srgb += [6000 + x * 900, 9000 + y * 1700, 50000 - (x * y * 13) % 30000, 65535]
        rect = Gegl.Rectangle.new(0, 0, W_, H_)
        layer.get_buffer().set(rect, "R'G'B'A u16", struct.pack("<%dH" % len(srgb), *srgb))
        layer.get_buffer().flush()
        before = native(layer)
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, W_, H_)
        client = ac.Client("{URL}")
        plan = host.plan_job(client.operation("inpaint"), image, layer, "", "classic-telea",
                             {"strength": 0})
        sent = list(plan.image.data[:8])
        depth = host.pixels_depth(plan.image)
        call("plug-in-aiedit-inpaint", image, [layer], model="classic-telea",
             params='{"strength": 0}', **{"server-url": "{URL}"})
        result = image.get_layers()[0]
        words = lambda data: list(struct.unpack("<%dH" % (len(data) // 2), data))
        report(layers=layers(image), before=words(before), base=words(native(layer)),
               after=words(native(result)),
               bpp=result.get_bpp(), precision=str(image.get_precision()),
               profile=image.get_color_profile().get_label(), sent=sent, depth=depth,
               srgb=srgb[:4])
    ''', URL=live_server.url)
    assert [lay["name"] for lay in report["layers"]] == ["Inpaint", "Background"]
    assert report["bpp"] == 8, "the result layer is 16-bit RGBA like the image"
    assert "U16_NON_LINEAR" in report["precision"] and "Adobe" in report["profile"]
    assert report["base"] == report["before"], "the base layer changed"
    # what was sent is sRGB (GEGL converted it from Adobe RGB), not the Adobe RGB numbers
    assert report["depth"] == 16, "a 16-bit image goes to the server at 16 bits"
    sent = [a + 256 * b for a, b in zip(report["sent"][0::2], report["sent"][1::2], strict=True)]
    assert all(abs(a - b) <= 16 for a, b in zip(sent, report["srgb"], strict=True)), sent
    assert report["before"][:3] != report["srgb"][:3], "the test image is not in Adobe RGB"
    worst = max(abs(a - b) for a, b in zip(report["after"], report["before"], strict=True))
    assert worst / 257 <= 1.0, f"round trip moved a channel by {worst / 257:.2f} (8-bit terms)"
    # far below what an 8-bit step in between would cost (up to half a code value, 128)
    assert worst <= 16, f"round trip moved a channel by {worst} of 65535"
    assert len(set(report["after"][0::4])) > 1024, "red lost its 16-bit levels"


def test_soft_selection_becomes_an_editable_layer_mask_in_real_gimp(gimp, live_server):
    report = run_batch(gimp, '''
        image = Gimp.Image.new(40, 32, Gimp.ImageBaseType.RGB)
        layer = new_layer(image, "Background", 40, 32,
                          bytes(v for y in range(32) for x in range(40)
                                for v in (x * 6, y * 7, 90, 255)))
        image.select_ellipse(Gimp.ChannelOps.REPLACE, 8, 6, 24, 20)
        Gimp.Selection.feather(image, 6.0)
        call("plug-in-aiedit-inpaint", image, [layer], model="classic-telea",
             params='{"strength": 0}', **{"server-url": "{URL}", "context-margin": 4})
        result = image.get_layers()[0]
        _ok, x, y = result.get_offsets()
        w, h = result.get_width(), result.get_height()
        rect = Gegl.Rectangle.new(x, y, w, h)
        selection = image.get_selection().get_buffer().get(rect, 1.0, "Y u8",
                                                           Gegl.AbyssPolicy.NONE)
        mask = result.get_mask().get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "Y u8",
                                                  Gegl.AbyssPolicy.NONE)
        alpha = result.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8",
                                        Gegl.AbyssPolicy.NONE)[3::4]
        generate = ac.Client("{URL}").operation("generate")
        plan = host.plan_job(generate, image, None, "a fox", "", {})
        soft_generate = plan.layer_mask is not None and list(plan.layer_mask.data) == list(
            image.get_selection().get_buffer().get(
                Gegl.Rectangle.new(plan.region.x, plan.region.y, plan.region.width,
                                   plan.region.height), 1.0, "Y u8", Gegl.AbyssPolicy.NONE))
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 4, 4, 10, 10)
        rectangle = host.plan_job(generate, image, None, "a fox", "", {}).layer_mask
        report(layers=layers(image), selection=list(selection), mask=list(mask),
               alpha=sorted(set(alpha)), soft_generate=soft_generate,
               rectangle_mask=rectangle is not None)
    ''', URL=live_server.url)
    new = report["layers"][0]
    assert new["mask"] is True
    assert report["mask"] == report["selection"], "the layer mask is not the selection"
    assert 0 < min(report["selection"]) < 255 or len(set(report["selection"])) > 10, \
        "the selection was not soft"
    assert len(set(report["mask"])) > 10, "the mask lost the selection's soft edge"
    assert report["alpha"] == [255], "the selection was baked into the result's alpha"
    assert report["soft_generate"] is True, "generate into a soft selection gets its mask"
    assert report["rectangle_mask"] is False, "a rectangle needs no mask"


def test_results_follow_the_image_or_say_why_not_in_real_gimp(gimp, live_server):
    """Two outpaint results sent before either is applied land together (the canvas grows
    once); a crop or a closed image while a job runs gives the message and the choice."""
    report = run_batch(gimp, '''
        client = ac.Client("{URL}")
        pattern = bytes(v for y in range(30) for x in range(40) for v in (x * 6, y * 8, 90, 255))
        image = Gimp.Image.new(40, 30, Gimp.ImageBaseType.RGB)
        layer = new_layer(image, "Background", 40, 30, pattern)
        sides = {"left": 8, "top": 0, "right": 0, "bottom": 0}
        plan_a, out_a = run_job(client, "outpaint", image, layer, sides)
        plan_b, out_b = run_job(client, "outpaint", image, layer, sides)
        a = host.insert_results(image, layer, plan_a, out_a)[0]
        b = host.insert_results(image, layer, plan_b, out_b)[0]
        outpaint = dict(size=[image.get_width(), image.get_height()],
                        base=list(layer.get_offsets())[1:], a=list(a.get_offsets())[1:],
                        b=list(b.get_offsets())[1:])

        image.select_rectangle(Gimp.ChannelOps.REPLACE, 20, 10, 8, 6)
        plan_c, out_c = run_job(client, "inpaint", image, layer, {"strength": 0},
                                "classic-telea")
        image.crop(30, 20, 4, 2)
        try:
            host.insert_results(image, layer, plan_c, out_c)
            cropped = None
        except host.ImageChanged as change:
            cropped = [str(change), change.closed]
        before_place = len(image.get_layers())
        placed = host.insert_results(image, layer, plan_c, out_c, placement="old-position")
        crop = dict(message=cropped, layers=before_place,
                    placed=list(placed[0].get_offsets())[1:],
                    region=[plan_c.region.x, plan_c.region.y])
        dropped = host.insert_results(image, layer, plan_c, out_c, placement="discard")

        other = Gimp.Image.new(24, 20, Gimp.ImageBaseType.RGB)
        other_layer = new_layer(other, "Background", 24, 20, bytes((200, 10, 10, 255)) * 480)
        plan_d, out_d = run_job(client, "outpaint", other, other_layer,
                                {"left": 0, "top": 0, "right": 6, "bottom": 0})
        other.delete()
        try:
            host.insert_results(other, other_layer, plan_d, out_d)
            closed = None
        except host.ImageChanged as change:
            closed = [str(change), change.closed]
        moved = host.insert_results(other, other_layer, plan_d, out_d,
                                    placement="old-position")[0]
        new_image = moved.get_image()
        report(outpaint=outpaint, crop=crop, dropped=len(dropped), closed=closed,
               new_image=[new_image.get_width(), new_image.get_height()],
               moved=list(moved.get_offsets())[1:], images=len(Gimp.get_images()))
    ''', URL=live_server.url)
    assert report["outpaint"] == {"size": [48, 30], "base": [8, 0], "a": [0, 0], "b": [0, 0]}
    message, closed = report["crop"]["message"]
    assert closed is False
    assert message.startswith("The image changed from 48x30 to 30x20 pixels (cropped, resized "
                              "or scaled) while the job ran"), message
    # at the offsets the job was sent with, in the cropped image's coordinates
    assert report["crop"]["placed"] == report["crop"]["region"]
    assert report["dropped"] == 0
    message, closed = report["closed"]
    assert closed is True and "was closed while the job ran" in message
    assert report["new_image"] == [30, 20] and report["moved"] == [0, 0]


def test_upscaled_image_keeps_profile_precision_and_scaled_resolution_in_real_gimp(
        gimp, live_server):
    report = run_batch(gimp, '''
        image = Gimp.Image.new_with_precision(20, 16, Gimp.ImageBaseType.RGB,
                                              Gimp.Precision.U16_NON_LINEAR)
        image.set_color_profile(Gimp.ColorProfile.new_rgb_adobe())
        image.set_resolution(300.0, 240.0)
        layer = Gimp.Layer.new(image, "Background", 20, 16, Gimp.ImageType.RGBA_IMAGE, 100.0,
                               Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, None, 0)
        layer.get_buffer().set(Gegl.Rectangle.new(0, 0, 20, 16), "R'G'B'A u8",
                               bytes((40, 120, 200, 255)) * 320)
        layer.get_buffer().flush()
        call("plug-in-aiedit-upscale", image, [layer], model="classic-lanczos",
             params='{"scale": 2}', **{"server-url": "{URL}"})
        new = [i for i in Gimp.get_images() if i != image][0]
        top = new.get_layers()[0]
        pixel = list(top.get_buffer().get(Gegl.Rectangle.new(10, 10, 1, 1), 1.0, "R'G'B'A u8",
                                          Gegl.AbyssPolicy.NONE))
        indexed = Gimp.Image.new(8, 8, Gimp.ImageBaseType.RGB)
        il = Gimp.Layer.new(indexed, "Background", 8, 8, Gimp.ImageType.RGBA_IMAGE, 100.0,
                            Gimp.LayerMode.NORMAL)
        indexed.insert_layer(il, None, 0)
        indexed.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE,
                                16, False, False, "")
        proc = Gimp.get_pdb().lookup_procedure("plug-in-aiedit-restore")
        cfg = proc.create_config()
        cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
        cfg.set_property("image", indexed)
        cfg.set_core_object_array("drawables", indexed.get_layers())
        cfg.set_property("server-url", "{URL}")
        refused = proc.run(cfg)
        report(size=[new.get_width(), new.get_height()],
               profile=new.get_color_profile().get_label() if new.get_color_profile() else None,
               resolution=list(new.get_resolution())[1:], precision=str(new.get_precision()),
               pixel=pixel, refused=str(refused.index(1)))
    ''', URL=live_server.url)
    assert report["size"] == [40, 32]
    assert report["profile"] == "Compatible with Adobe RGB (1998)"
    assert report["resolution"] == [600.0, 480.0]
    assert "U16_NON_LINEAR" in report["precision"]
    assert all(abs(a - b) <= 1 for a, b in zip(report["pixel"], (40, 120, 200, 255),
                                               strict=True)), report["pixel"]
    assert "indexed colours: convert it first with Image > Mode > RGB" in report["refused"]


def test_dialog_spin_buttons_last_values_and_settings_again_in_real_gimp(gimp, xvfb,
                                                                         live_server):
    """Numbers are spin buttons within the schema's bounds; the dialog opens with the values
    last confirmed for the operation; an earlier job's settings (with its result's seed) fill
    the form again."""
    code = HOST + textwrap.dedent('''
        import gi
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
        import aiedit_dialog
        operation = ac.Client("{URL}").operation("inpaint")
        procedure = Gimp.get_pdb().lookup_procedure("plug-in-aiedit-inpaint")
        seen = {}

        def first():
            form = aiedit_dialog.OPEN["form"]
            strength, seed = form.widgets["strength"], form.widgets["seed"]
            adj = strength.input.get_adjustment()
            seen["strength"] = [type(strength.input).__name__, adj.get_lower(), adj.get_upper()]
            seen["seed_auto"] = seed.auto.get_active()
            seen["choice"] = type(form.model_combo).__name__
            seen["history_first"] = aiedit_dialog.OPEN["history"] is not None
            strength.input.set_value(0.4)
            strength.input.set_value(7.0)  # clamped to the schema's maximum, 1
            seed.auto.set_active(False)
            seed.input.set_value(123)
            form.widgets["radius"].input.set_value(9)
            aiedit_dialog.OPEN["dialog"].response(Gtk.ResponseType.OK)
            return False

        def second():
            form = aiedit_dialog.OPEN["form"]
            seen["remembered"] = form.values()
            combo = aiedit_dialog.OPEN["history"].combo
            combo.set_active(1)
            seen["again"] = form.values()
            aiedit_dialog.OPEN["dialog"].response(Gtk.ResponseType.OK)
            return False

        config = procedure.create_config()
        GLib.timeout_add(1500, first)
        first_answer = aiedit_dialog.ask(procedure, config, operation)
        first_params = json.loads(config.get_property("params"))
        earlier = host.Plan("inpaint", "classic-telea", {"strength": 0.2, "radius": 3},
                            ac.Region(0, 0, 8, 8), prompt="a red door")
        host.record_history(earlier, {"id": "job-1", "results": [{"seed": 77}, {"seed": 78}]})
        config = procedure.create_config()
        GLib.timeout_add(1500, second)
        second_answer = aiedit_dialog.ask(procedure, config, operation)
        report(first=first_answer, first_params=first_params, seen=seen,
               second=second_answer, params=json.loads(config.get_property("params")),
               prompt=config.get_property("prompt"), model=config.get_property("model"))
    ''').replace("{URL}", live_server.url)
    report = gimp.batch(code, display=xvfb)
    seen = report["seen"]
    assert seen["strength"] == ["SpinButton", 0.0, 1.0]
    assert seen["seed_auto"] is True, "an empty seed is shown as Random"
    assert seen["choice"] == "ComboBoxText" and seen["history_first"] is False
    assert report["first"] is True
    assert report["first_params"]["strength"] == 1.0, "the spin button kept within bounds"
    assert report["first_params"]["seed"] == 123 and report["first_params"]["radius"] == 9
    assert seen["remembered"]["seed"] == 123 and seen["remembered"]["radius"] == 9
    assert seen["remembered"]["strength"] == 1.0
    assert seen["again"]["strength"] == 0.2 and seen["again"]["seed"] == 77
    assert seen["again"]["radius"] == 3
    assert report["second"] is True
    assert report["params"]["seed"] == 77 and report["prompt"] == "a red door"
    assert report["model"] == "classic-telea"


def test_results_browser_previews_and_applies_some_in_real_gimp(gimp, xvfb):
    """Variations as thumbnails: previews switch without committing, two of three are
    applied, the third stays kept for later; a second browse discards it."""
    code = HOST + textwrap.dedent('''
        import aiedit_browser
        image = Gimp.Image.new(16, 12, Gimp.ImageBaseType.RGB)
        base = new_layer(image, "Background", 16, 12, bytes((10, 10, 10, 255)) * 192)
        colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
        images = [(ac.Result(i, "image", 8, 6, 4, 3, 40 + i, "/r/%d" % i),
                   ac.Pixels(8, 6, bytes(colours[i] + (255,)) * 48)) for i in range(3)]
        plan = host.Plan("generate", "", {"count": 3}, ac.Region(4, 3, 8, 6), prompt="fox",
                         geometry=host.document_geometry(image))
        outcome = host.Outcome({"id": "job-b", "results": []}, images)
        host.journal().add("job-b", server_url="http://x", operation="generate", prompt="fox",
                           region=plan.region.as_json(), geometry=plan.geometry)
        host.record_history(plan, {"id": "job-b", "results": [{"seed": 40}]})
        browser = aiedit_browser.Browser(image, base, [aiedit_browser.Pending(plan, outcome)])
        browser.build()
        def names():
            return [(l.get_name(), l.get_visible()) for l in image.get_layers()]
        browser.preview(0)
        after_first = names()
        browser.preview(2)
        after_switch = names()
        browser.check(1)
        browser.check(2)
        browser.finish("apply")
        applied = names()
        entry = host.journal().entries()[0]
        again = aiedit_browser.Browser(image, base, [aiedit_browser.Pending(plan, outcome, entry)])
        again.build()
        left = [item.result.index for item in again.items]
        again.finish("discard")
        report(after_first=after_first, after_switch=after_switch, applied=applied,
               entry=entry, left=left, journal=host.journal().entries(),
               history=[e["state"] for e in host.history()],
               top=list(image.get_layers()[0].get_offsets())[1:] + list(
                   image.get_layers()[0].get_buffer().get(Gegl.Rectangle.new(0, 0, 1, 1), 1.0,
                                                          "R'G'B'A u8", Gegl.AbyssPolicy.NONE)))
    ''')
    report = gimp.batch(code, display=xvfb)
    assert report["after_first"] == [["Generate: fox (seed 40)", True], ["Background", True]]
    assert report["after_switch"] == [["Generate: fox (seed 40)", False],
                                      ["Generate: fox (seed 42)", True], ["Background", True]]
    assert sorted(report["applied"]) == sorted([["Generate: fox (seed 42)", True],
                                                ["Generate: fox (seed 41)", True],
                                                ["Background", True]])
    assert report["entry"]["applied"] == [1, 2] and report["entry"]["kept"] is True
    assert report["left"] == [0], "the unapplied variation is still offered"
    assert report["journal"] == []
    assert report["history"] == ["discarded"]
    assert report["top"] == [4, 3, 0, 0, 200, 255], "the result is not where it was made"


def received_job(server) -> dict:
    """The newest job as the server stored it: params, region and the input files' bytes."""
    import sqlite3

    with sqlite3.connect(server.data_dir / "aiedit.sqlite3") as db:
        row = db.execute("SELECT id, params, region, inputs FROM jobs ORDER BY created_at DESC "
                         "LIMIT 1").fetchone()
    job_id, params, region, inputs = row[0], json.loads(row[1]), json.loads(row[2]), \
        json.loads(row[3])
    files = {name: (server.data_dir / "blobs" / job_id / ref["blob"]).read_bytes()
             for name, ref in inputs.items()}
    return {"params": params, "region": region, "inputs": inputs, "files": files}


@pytest.mark.ml
def test_control_and_reference_layers_reach_the_server_in_real_gimp(gimp, tiny_server):
    """A generate job with a control layer (canny map), a reference layer, a style, a LoRA and
    two variations: the server receives the control layers' pixels over the job's region."""
    report = run_batch(gimp, '''
        import hashlib
        image = Gimp.Image.new(96, 80, Gimp.ImageBaseType.RGB)
        base = new_layer(image, "Background", 96, 80, bytes((40, 60, 80, 255)) * 7680)
        edges = new_layer(image, "Edges", 96, 80, bytes(
            v for y in range(80) for x in range(96)
            for v in ((255, 255, 255, 255) if x % 12 == 0 or y % 10 == 0 else (0, 0, 0, 255))))
        ref = new_layer(image, "Ref", 80, 72, bytes(
            v for y in range(72) for x in range(80) for v in (x * 3, y * 3, 200, 255)))
        ref.set_offsets(8, 4)
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 16, 8, 64, 64)
        call("plug-in-aiedit-generate", image, [base], prompt="a red fox", model="tiny-sdxl",
             style="cinematic",
             params=json.dumps({"seed": 7, "steps": 2, "count": 2,
                                "loras": [{"id": "tiny-lora-sdxl", "weight": 0.5}]}),
             controls=json.dumps([{"layer": "Edges", "kind": "canny", "strength": 0.7},
                                  {"layer": "Ref", "kind": "reference", "strength": 0.5}]),
             **{"server-url": "{URL}"})
        def region_of(layer):
            _ok, ox, oy = layer.get_offsets()
            return bytes(layer.get_buffer().get(Gegl.Rectangle.new(16 - ox, 8 - oy, 64, 64),
                                                1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE))
        report(layers=layers(image),
               edges=hashlib.sha256(region_of(edges)).hexdigest(),
               ref=hashlib.sha256(region_of(ref)).hexdigest(),
               ref_corner=list(region_of(ref)[:4]))
    ''', URL=tiny_server.url)
    import hashlib

    job = received_job(tiny_server)
    params = job["params"]
    assert job["region"] == {"x": 16, "y": 8, "width": 64, "height": 64}
    assert [(c["kind"], c["input"], c["strength"]) for c in params["control"]] == [
        ("canny", "control0", 0.7), ("reference", "control1", 0.5)]
    assert params["loras"] == [{"id": "tiny-lora-sdxl", "weight": 0.5}]
    assert params["count"] == 2
    assert params["prompt"].startswith("cinematic film still of a red fox"), params["prompt"]
    assert hashlib.sha256(job["files"]["control0"]).hexdigest() == report["edges"]
    assert hashlib.sha256(job["files"]["control1"]).hexdigest() == report["ref"]
    # the region's corner (16, 8) is the reference layer's pixel (8, 4): its offsets count
    assert report["ref_corner"] == [24, 12, 200, 255]
    new = [lay for lay in report["layers"] if lay["name"].startswith("Generate")]
    assert sorted(lay["name"] for lay in new) == ["Generate: a red fox (seed 7)",
                                                  "Generate: a red fox (seed 8)"]
    assert all((lay["x"], lay["y"]) == (16, 8) for lay in new)


def test_dialog_style_lora_and_control_layer_widgets_in_real_gimp(gimp, xvfb, live_server):
    """The generate dialog offers the server's styles, its LoRAs with weights and control
    layers chosen from the image's layers; the choices reach the procedure's arguments and
    come back the next time."""
    code = HOST + textwrap.dedent('''
        import gi
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
        import aiedit_dialog
        client = ac.Client("{URL}")
        operation = client.operation("generate")
        procedure = Gimp.get_pdb().lookup_procedure("plug-in-aiedit-generate")
        image = Gimp.Image.new(32, 32, Gimp.ImageBaseType.RGB)
        base = new_layer(image, "Background", 32, 32, bytes((1, 2, 3, 255)) * 1024)
        sketch = new_layer(image, "Sketch", 32, 32, bytes((9, 9, 9, 255)) * 1024)
        seen = {}

        def first():
            creative = aiedit_dialog.OPEN["creative"]
            seen["styles"] = [row[0] for row in creative.style_combo.get_model()]
            seen["loras"] = [row[0] for row in creative.loras[0][0].get_model()]
            seen["layers"] = [row[0] for row in creative.controls_rows[0][1].get_model()]
            creative.style_combo.set_active_id("cinematic")
            combo, weight = creative.loras[0]
            combo.set_active_id("lora-pixel-art-xl")
            weight.set_value(0.8)
            kind, layer, strength, picture = creative.controls_rows[0]
            kind.set_active_id("scribble")
            layer.set_active_id(str(sketch.get_id()))
            strength.set_value(0.6)
            picture.set_active(True)
            aiedit_dialog.OPEN["dialog"].response(Gtk.ResponseType.OK)
            return False

        def second():
            creative = aiedit_dialog.OPEN["creative"]
            seen["again"] = [creative.style(), creative.params(), creative.controls()]
            aiedit_dialog.OPEN["dialog"].response(Gtk.ResponseType.CANCEL)
            return False

        config = procedure.create_config()
        config.set_property("prompt", "a fox")
        GLib.timeout_add(1500, first)
        answered = aiedit_dialog.ask(procedure, config, operation, image, client)
        result = dict(style=config.get_property("style"),
                      controls=json.loads(config.get_property("controls")),
                      params=json.loads(config.get_property("params")))
        GLib.timeout_add(1500, second)
        aiedit_dialog.ask(procedure, procedure.create_config(), operation, image, client)
        report(answered=answered, seen=seen, sketch=sketch.get_id(), **result)
    ''').replace("{URL}", live_server.url)
    report = gimp.batch(code, display=xvfb)
    seen = report["seen"]
    assert "Cinematic" in seen["styles"] and seen["styles"][0] == "No style"
    assert any(name.startswith("lora-pixel-art-xl") or "Pixel" in name
               for name in seen["loras"]), seen["loras"]
    assert seen["layers"] == ["Sketch", "Background"]
    assert report["answered"] is True and report["style"] == "cinematic"
    assert report["controls"] == [{"layer": report["sketch"], "kind": "scribble",
                                   "strength": 0.6, "preprocess": True}]
    assert report["params"]["loras"] == [{"id": "lora-pixel-art-xl", "weight": 0.8}]
    assert seen["again"] == ["cinematic", {"loras": [{"id": "lora-pixel-art-xl",
                                                      "weight": 0.8}]},
                             [{"layer": report["sketch"], "kind": "scribble", "strength": 0.6,
                               "preprocess": True}]]


def test_settings_offer_get_a_key_and_buy_credits_in_real_gimp(gimp, xvfb):
    code = HOST + textwrap.dedent('''
        import gi
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
        import aiedit_dialog
        opened = []
        aiedit_dialog.open_uri = opened.append
        procedure = Gimp.get_pdb().lookup_procedure("plug-in-aiedit-settings")
        config = procedure.create_config()
        labels = []

        def press():
            for button in aiedit_dialog.OPEN["account_buttons"].get_children():
                labels.append(button.get_label())
                button.clicked()
            aiedit_dialog.OPEN["dialog"].response(Gtk.ResponseType.OK)
            return False

        GLib.timeout_add(1500, press)
        answer = aiedit_dialog.ask_settings(procedure, config, "https://ai.example.org/", "k1")
        report(answer=answer, opened=opened, labels=labels)
    ''')
    report = gimp.batch(code, display=xvfb)
    assert report["labels"] == ["_Get a key…", "_Buy credits…"]
    assert report["opened"] == ["https://ai.example.org/account/keys",
                                "https://ai.example.org/account/credits"]
    assert report["answer"] == ["https://ai.example.org/", "k1"]


@pytest.mark.ml
def test_step_previews_show_while_a_job_runs_in_real_gimp(gimp, xvfb, tiny_server):
    code = HOST + textwrap.dedent('''
        import aiedit_dialog
        client = ac.Client("{URL}")
        image = Gimp.Image.new(256, 256, Gimp.ImageBaseType.RGB)
        window = aiedit_dialog.PreviewWindow("aiedit: generate")
        progress = host.GimpProgress("aiedit: generate", window.show_preview, window.pump)
        plan = host.plan_job(client.operation("generate"), image, None, "a red fox",
                             "tiny-sdxl", {"seed": 3, "steps": 40})
        outcome = host.execute(client, plan, progress, record=False, watchdog=False)
        visible = window.window is not None and window.window.get_visible()
        window.close()
        report(shown=window.shown, visible=visible, results=len(outcome.images),
               closed=window.window is None)
    ''').replace("{URL}", tiny_server.url)
    report = gimp.batch(code, display=xvfb)
    shown = report["shown"]
    assert shown, "no step preview reached the preview window during a 40-step job"
    steps = [step for step, _w, _h in shown]
    assert steps == sorted(set(steps)) and all(0 < s < 40 for s in steps), steps
    assert all(0 < w <= 256 and 0 < h <= 256 for _s, w, h in shown)
    assert report["visible"] is True and report["closed"] is True
    assert report["results"] == 1


@pytest.mark.ml
def test_rerender_adds_a_result_without_a_new_job_in_real_gimp(gimp, xvfb, tiny_server):
    """The results browser's re-render: one more result with another seed from a live
    session (no job queued), previewed and applied like the job's own."""
    code = HOST + textwrap.dedent('''
        import sqlite3
        import aiedit_browser
        client = ac.Client("{URL}")
        image = Gimp.Image.new(64, 64, Gimp.ImageBaseType.RGB)
        operation = client.operation("generate")
        plan = host.plan_job(operation, image, None, "a fox", "tiny-sdxl",
                             {"seed": 5, "steps": 2})
        outcome = host.execute(client, plan, Quiet(), record=False, watchdog=False)
        possible = host.ReRender.possible(plan, operation, outcome.job)
        db = sqlite3.connect("{DATA}/aiedit.sqlite3")
        jobs_before = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        rerender = host.ReRender(client, plan, outcome.job)
        browser = aiedit_browser.Browser(image, None, [aiedit_browser.Pending(plan, outcome)],
                                         rerender=rerender)
        browser.build()
        number = browser.rerender_now()
        item = browser.items[number]
        jobs_after = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        browser.preview(number)
        browser.check(0, False)
        browser.check(number)
        browser.finish("apply")
        report(possible=possible, count=len(browser.items), seed=item.result.seed,
               size=[item.pixels.width, item.pixels.height], jobs=[jobs_before, jobs_after],
               layers=layers(image), session_closed=rerender.session is None)
    ''').replace("{URL}", tiny_server.url).replace("{DATA}", "/aiedit-data")
    gimp.binds = ["--bind", f"{tiny_server.data_dir}:/aiedit-data"]
    report = gimp.batch(code, display=xvfb)
    assert report["possible"] is True
    assert report["count"] == 2 and report["seed"] != 5
    assert report["size"] == [64, 64]
    assert report["jobs"][0] == report["jobs"][1], "re-rendering queued a job"
    assert [lay["name"] for lay in report["layers"]] == [f"Generate: a fox (seed {report['seed']})"]
    assert report["session_closed"] is True
