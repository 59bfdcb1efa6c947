"""The Krita plugin against the ``krita`` stub and a live ``aiedit serve`` (fast, no Krita)."""

from __future__ import annotations

import array
import tempfile
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from aiedit import plugins_install

W, H = 64, 48
SELECTION = (20, 12, 16, 10)  # x, y, width, height


def scene() -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    image = np.dstack([np.full_like(xs, 30), 3 * xs, 4 * ys, np.full_like(xs, 255)])
    image = image.astype(np.uint8)
    image[14:20, 24:32] = (250, 0, 0, 255)
    return image


def bgra(rgba: np.ndarray) -> bytes:
    return rgba[..., [2, 1, 0, 3]].tobytes()


def make_document(app, rgba=None, depth="U8", model="RGBA", selection=SELECTION):
    doc = app.createDocument(W, H, "test", model, depth, "", 72.0)
    if rgba is not None:
        doc.rootNode().childNodes()[0].setPixelData(bgra(rgba), 0, 0, W, H)
    if selection:
        from krita import Selection

        sel = Selection()
        sel.select(*selection, 255)
        doc.setSelection(sel)
    app.setActiveDocument(doc)
    return doc


def layer_rgba(node, w=W, h=H) -> np.ndarray:
    data = np.frombuffer(bytes(node.pixelData(0, 0, w, h)), np.uint8).reshape(h, w, 4)
    return data[..., [2, 1, 0, 3]]


def wait_until(qapp, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        qapp.processEvents()
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


def selected_area() -> np.ndarray:
    x, y, w, h = SELECTION
    mask = np.zeros((H, W), bool)
    mask[y:y + h, x:x + w] = True
    return mask


# -- pixel layouts ------------------------------------------------------------------------------

def test_8bit_bgra_becomes_rgba_and_back(plugin):
    px = plugin.pixels
    assert px.to_rgba8(bytes([0, 64, 255, 200]), "U8") == bytes([255, 64, 0, 200])
    assert px.from_rgba8(bytes([255, 64, 0, 200]), "U8") == bytes([0, 64, 255, 200])


def test_16bit_srgb_reads_as_8bit_and_writes_back_exactly(plugin):
    px = plugin.pixels
    bgra16 = array.array("H", [0, 0x4140, 0xFFFF, 0xC8C8]).tobytes()  # read from Krita 5.1.5
    assert list(px.to_rgba8(bgra16, "U16")) == [255, 65, 0, 200]
    written = px.from_rgba8(bytes([255, 64, 0, 200]), "U16")
    assert list(array.array("H", written)) == [0, 64 * 257, 65535, 200 * 257]
    assert px.to_rgba16(written, "U16") == array.array("H", [65535, 64 * 257, 0, 200 * 257]) \
        .tobytes()
    assert px.from_rgba16(px.to_rgba16(written, "U16"), "U16") == written


def test_bulk_conversion_of_a_large_16bit_layer_is_fast(plugin):
    """4096 x 1024 x 16-bit (a quarter of the benchmark's layer) both ways in well under a
    second: slicing, not value-by-value Python."""
    px = plugin.pixels
    data = bytes(range(256)) * (4096 * 1024 * 8 // 256)
    started = time.perf_counter()
    rgba = px.to_rgba8(data, "U16")
    back = px.from_rgba8(rgba, "U16")
    assert time.perf_counter() - started < 1.0
    assert len(back) == len(data)


@pytest.mark.parametrize("model, depth, profile, srgb", [
    ("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc", True),
    ("RGBA", "U16", "sRGB built-in", True),
    ("RGBA", "U16", "sRGB-elle-V2-g10.icc", False),
    ("RGBA", "U16", "ClayRGB-elle-V2-g22.icc", False),
    ("RGBA", "F32", "sRGB-elle-V2-srgbtrc.icc", False),
    ("GRAYA", "U8", "Gray-D50-elle-V2-srgbtrc.icc", False),
    ("CMYKA", "U8", "Chemical proof", False),
])
def test_only_integer_srgb_skips_kritas_colour_engine(plugin, model, depth, profile, srgb):
    assert plugin.pixels.layout_of(model, depth, profile).is_srgb is srgb


# -- reading a document -------------------------------------------------------------------------

def test_capture_reads_selection_grown_by_margin_and_its_mask(plugin, krita_app):
    doc = make_document(krita_app, scene())
    op = {"id": "inpaint", "region": "selection", "inputs": {"image": "required",
                                                             "mask": "required"}}
    capture = plugin.host.read_capture(doc, op, margin=8)
    x, y, w, h = SELECTION
    region = capture.region
    assert (region.x, region.y, region.width, region.height) == (x - 8, y - 8, w + 16, h + 16)
    image = np.frombuffer(capture.image.data, np.uint8).reshape(h + 16, w + 16, 4)
    np.testing.assert_array_equal(image, scene()[y - 8:y + h + 8, x - 8:x + w + 8])
    mask = np.frombuffer(capture.mask.data, np.uint8).reshape(h + 16, w + 16)
    assert mask[8:8 + h, 8:8 + w].min() == 255 and mask.sum() == 255 * w * h


def test_capture_margin_is_clamped_to_the_image(plugin, krita_app):
    doc = make_document(krita_app, scene(), selection=(0, 0, 10, 10))
    op = {"id": "inpaint", "region": "selection", "inputs": {"image": "required",
                                                             "mask": "required"}}
    region = plugin.host.read_capture(doc, op, margin=32).region
    assert (region.x, region.y, region.width, region.height) == (0, 0, 42, 42)


def test_inpaint_without_selection_says_to_select(plugin, krita_app):
    doc = make_document(krita_app, scene(), selection=None)
    op = {"id": "inpaint", "region": "selection", "inputs": {"image": "required",
                                                             "mask": "required"}}
    with pytest.raises(plugin.host.HostError, match="Select the area to inpaint"):
        plugin.host.read_capture(doc, op)


def test_capture_falls_back_to_topmost_visible_layer_without_active_node(plugin, krita_app):
    doc = make_document(krita_app, scene(), selection=None)
    top = doc.createNode("top", "paintlayer")
    top.setPixelData(bytes([1, 2, 3, 255]) * (W * H), 0, 0, W, H)
    doc.rootNode().addChildNode(top, doc.rootNode().childNodes()[0])
    op = {"id": "restore", "region": "layer", "inputs": {"image": "required"}}
    capture = plugin.host.read_capture(doc, op, source="layer")
    assert capture.source_node is top
    assert capture.image.data[:4] == bytes([3, 2, 1, 255])


# -- aiedit.run against a live server -----------------------------------------------------------

def test_run_inpaint_adds_result_and_mask_layer_in_a_group(plugin, krita_app, live_server):
    doc = make_document(krita_app, scene())
    nodes = plugin.run(doc, "inpaint", model="classic-telea", server_url=live_server.url,
                       params={"seed": 7, "feather": 0})
    [group] = nodes
    assert group.name() == "inpaint · classic-telea" and group.type() == "grouplayer"
    names = [n.name() for n in doc.topLevelNodes()]
    assert names.index("inpaint · classic-telea") > names.index("Background")
    result, mask = group.childNodes()
    assert mask.blendingMode() == "destination-in"
    inside = selected_area()
    assert (layer_rgba(mask)[..., 3][inside] == 255).all()
    assert (layer_rgba(mask)[..., 3][~inside] == 0).all()
    pixels = layer_rgba(result)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 40)
    assert not red[inside].any(), "the red block is painted over"
    merged = np.frombuffer(bytes(doc.pixelData(0, 0, W, H)), np.uint8).reshape(H, W, 4)
    np.testing.assert_array_equal(merged[..., [2, 1, 0, 3]][~inside], scene()[~inside])
    assert not ((merged[..., 2] > 200) & (merged[..., 1] < 40))[inside].any()
    np.testing.assert_array_equal(layer_rgba(doc.nodeByName("Background")), scene())


def test_run_on_krita_52_adds_a_transparency_mask(plugin, krita_stub, live_server):
    app = krita_stub.Krita.reset(version="5.2.0")
    doc = make_document(app, scene())
    [node] = plugin.run(doc, "inpaint", model="classic-telea", server_url=live_server.url)
    [mask] = node.childNodes()
    assert mask.type() == "transparencymask"
    x, y, w, h = SELECTION
    assert (mask.selection.x(), mask.selection.y(), mask.selection.width(),
            mask.selection.height()) == (x, y, w, h)
    assert (layer_rgba(node)[..., 3] == 255).all(), "the selection is not baked into alpha"


def test_run_uses_settings_and_reports_unreachable_server(plugin, krita_app, unused_url):
    krita_app.writeSetting("aiedit", "server_url", unused_url)
    doc = make_document(krita_app, scene())
    with pytest.raises(plugin.aiedit_client.ConnectionFailed, match="Cannot reach"):
        plugin.run(doc, "inpaint", model="classic-telea")


def test_run_on_16bit_srgb_layer_writes_16bit_pixels(plugin, krita_app, live_server):
    doc = krita_app.createDocument(W, H, "deep", "RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc", 72.0)
    krita_app.setActiveDocument(doc)
    node = doc.rootNode().childNodes()[0]
    node.setPixelData(plugin.pixels.from_rgba8(scene().tobytes(), "U16"), 0, 0, W, H)
    [result] = plugin.run(doc, "restore", model="classic-denoise", server_url=live_server.url,
                          source="layer", node=node)
    raw = bytes(result.pixelData(0, 0, W, H))
    assert len(raw) == W * H * 8
    back = np.frombuffer(plugin.pixels.to_rgba8(raw, "U16"), np.uint8).reshape(H, W, 4)
    assert np.abs(back.astype(int) - scene()).mean() < 12, "a denoised copy of the layer"


def test_outpaint_grows_the_canvas(plugin, krita_app, live_server):
    doc = make_document(krita_app, scene(), selection=None)
    [node] = plugin.run(doc, "outpaint", model="classic-telea", server_url=live_server.url,
                        params={"left": 8, "top": 4})
    assert (doc.width(), doc.height()) == (W + 8, H + 4)
    assert node.bounds().getRect() == (0, 0, W + 8, H + 4)
    background = layer_rgba(doc.nodeByName("Background"), W + 8, H + 4)
    np.testing.assert_array_equal(background[4:, 8:], scene())


def test_upscale_opens_a_new_document(plugin, krita_app, live_server):
    doc = make_document(krita_app, scene(), selection=None)
    [node] = plugin.run(doc, "upscale", model="classic-lanczos", server_url=live_server.url,
                        params={"scale": 2})
    new = krita_app.documents()[-1]
    assert new is not doc and (new.width(), new.height()) == (2 * W, 2 * H)
    assert node.bounds().getRect() == (0, 0, 2 * W, 2 * H)
    assert (doc.width(), doc.height()) == (W, H)


# -- video results --------------------------------------------------------------------------------

def frames_png(tmp_path, count=3) -> list:
    out = []
    for i in range(count):
        path = tmp_path / f"f{i}.png"
        Image.new("RGBA", (W, H), (80 * i, 10, 200, 255)).save(path)
        out.append(path.read_bytes())
    return out


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The temp folder the plugin writes frames to, to check it cleans up after itself."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_video_becomes_animated_layer_with_frame_rate(plugin, krita_stub, tmp_path, scratch):
    app = krita_stub.Krita.reset(window=True)
    doc = make_document(app, scene(), selection=None)
    capture = plugin.host.Capture(plugin.aiedit_client.Region(0, 0, W, H), None, None, W, H)
    node = plugin.host.insert_animation(doc, capture, frames_png(tmp_path), 12, "video · a cat")
    assert node.name() == "video · a cat" and node.animated()
    assert len(node._frames) == 3
    assert doc.framesPerSecond() == 12 and doc.fullClipRangeEndTime() >= 2
    assert list(scratch.iterdir()) == [], "the frame files are deleted once imported"


def test_video_without_window_becomes_group_of_frames(plugin, krita_app, tmp_path, scratch):
    doc = make_document(krita_app, scene(), selection=None)
    capture = plugin.host.Capture(plugin.aiedit_client.Region(0, 0, W, H), None, None, W, H)
    group = plugin.host.insert_animation(doc, capture, frames_png(tmp_path), 12, "video")
    frames = group.childNodes()
    assert [f.name() for f in frames] == ["frame 001", "frame 002", "frame 003"]
    assert list(bytes(frames[1].pixelData(0, 0, 1, 1))) == [200, 10, 80, 255]
    assert list(scratch.iterdir()) == [], "the frame files are deleted once read"


# -- the docker ---------------------------------------------------------------------------------

@pytest.fixture
def docker_data(tmp_path, monkeypatch):
    folder = tmp_path / "krita-data"
    monkeypatch.setenv("AIEDIT_KRITA_DATA", str(folder))
    return folder


@pytest.fixture
def docker(plugin, krita_app, live_server, qapp, docker_data):
    krita_app.writeSetting("aiedit", "server_url", live_server.url)
    krita_app.writeSetting("aiedit", "operation", "inpaint")
    dock = plugin.docker.AieditDocker()
    wait_until(qapp, lambda: dock.client is not None, timeout=15)
    yield dock
    dock.deleteLater()


def test_docker_builds_its_form_from_the_server(docker, live_server):
    assert "Connected to aiedit" in docker.status.text() and live_server.url in docker.status.text()
    ops = [docker.operation_combo.itemData(i) for i in range(docker.operation_combo.count())]
    assert {"inpaint", "upscale", "outpaint", "generate"} <= set(ops)
    assert docker.operation_combo.currentData() == "inpaint"
    assert docker.model_combo.currentData() == "classic-telea"
    assert {"seed", "feather", "context_margin"} <= set(docker.form.fields)
    assert "prompt" not in docker.form.fields and not docker.strength.isHidden()
    assert docker.form.fields["seed"].value() is None  # "auto"
    docker.operation_combo.setCurrentIndex(docker.operation_combo.findData("upscale"))
    upscale = docker.current_operation()
    assert docker.model_combo.currentData() == upscale["default_model"]
    installed = {m["id"] for m in upscale["models"] if m["installed"]}
    assert {"classic-lanczos", upscale["default_model"]} <= installed
    assert "scale" in docker.form.fields and docker.strength.isHidden()


def test_docker_generate_runs_off_the_gui_thread_then_apply_inserts(docker, krita_app, qapp):
    doc = make_document(krita_app, scene())
    assert "control" not in docker.form.fields, "lists (control layers) have no form widget"
    docker.form.fields["seed"].set(11)
    started = time.monotonic()
    assert docker.generate()
    assert time.monotonic() - started < 0.5, "generate() returns at once"
    assert not docker.generate_button.isEnabled() and docker.cancel_button.isEnabled()
    wait_until(qapp, lambda: docker.results.count() == 1)
    assert docker.progress.format() == "Done"
    assert len(doc.topLevelNodes()) == 2, "nothing is inserted before Apply"
    [node] = docker.apply()
    assert docker.results.count() == 0
    assert node.name() == "inpaint · classic-telea"
    assert node.childNodes()[1].bounds().getRect() == SELECTION, "masked by the selection"
    assert krita_app.readSetting("aiedit", "model", "") == "classic-telea"


def test_docker_discard_drops_results(docker, krita_app, qapp):
    doc = make_document(krita_app, scene())
    assert docker.generate()
    wait_until(qapp, lambda: docker.results.count() == 1)
    docker.discard()
    assert docker.results.count() == 0 and len(doc.topLevelNodes()) == 2


def test_docker_shows_why_it_cannot_generate(docker, krita_app, qapp):
    make_document(krita_app, scene(), selection=None)
    # inpaint without a selection refines the whole image, which the default classic model
    # cannot do: the server's reason reaches the docker
    assert docker.generate()
    wait_until(qapp, lambda: docker.job_thread is None)
    assert docker.progress.format().endswith(
        "mask: model classic-telea fills holes and needs a mask; refining a whole image takes "
        "a diffusion model")
    krita_app.setActiveDocument(None)
    assert not docker.generate()
    assert docker.progress.format() == "Open an image first."


def test_docker_remembers_server_and_key_in_krita_settings(docker, krita_app, unused_url, qapp):
    docker.url_edit.setText(unused_url)
    docker.key_edit.setText("secret-key")
    docker.connect_server()
    wait_until(qapp, lambda: "Cannot reach" in docker.status.text())
    assert krita_app.readSetting("aiedit", "server_url", "") == unused_url
    assert krita_app.readSetting("aiedit", "api_key", "") == "secret-key"


def test_plugin_registers_docker_and_actions(plugin, krita_stub, qapp):
    app = krita_stub.Krita.reset(window=True)
    plugin._register_with_krita()
    [factory] = app.dock_factories
    assert factory.id() == "aiedit_docker"
    [extension] = app.extension_list
    window = app.activeWindow()
    extension.createActions(window)
    assert {"aiedit_generate", "aiedit_apply"} <= set(window.actions)


# -- installing ---------------------------------------------------------------------------------

def test_install_enables_plugin_and_keeps_other_settings(tmp_path):
    kritarc = tmp_path / "kritarc"
    kritarc.write_text("[General]\nfoo=1\n\n[python]\nenable_other=true\nenable_aiedit=false\n")
    folder = plugins_install.install_krita(tmp_path / "pykrita", kritarc=kritarc)
    assert (folder / "aiedit_client.py").is_file() and (folder / "__init__.py").is_file()
    assert (tmp_path / "pykrita" / "aiedit.desktop").is_file()
    text = kritarc.read_text()
    assert "[General]\nfoo=1\n" in text and "enable_other=true" in text
    assert "enable_aiedit=true" in text and "enable_aiedit=false" not in text


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {"XDG_DATA_HOME": "/x/data"}, "/x/data/krita/pykrita"),
    ("linux", {}, "/home/u/.local/share/krita/pykrita"),
    ("win32", {"APPDATA": "C:/Users/u/AppData/Roaming"},
     "C:/Users/u/AppData/Roaming/krita/pykrita"),
    ("darwin", {}, "/home/u/Library/Application Support/krita/pykrita"),
])
def test_pykrita_folder_per_platform(platform, env, expected):
    from pathlib import Path

    path = plugins_install.krita_pykrita_dir(platform, env, Path("/home/u"))
    assert path.as_posix() == expected


def test_zip_imports_with_krita_script_importer(tmp_path):
    path = plugins_install.build_zip("krita", tmp_path)
    names = zipfile.ZipFile(path).namelist()
    assert "aiedit.desktop" in names and "aiedit/__init__.py" in names
    assert "aiedit/aiedit_client.py" in names
    assert not any("__pycache__" in n for n in names)


def test_docker_keeps_a_result_whose_document_closed_until_the_user_chooses(docker, krita_app,
                                                                            qapp):
    doc = make_document(krita_app, scene())
    assert docker.generate()
    wait_until(qapp, lambda: docker.results.count() == 1)
    doc.close()
    asked = []
    assert docker.apply(on_conflict=lambda p, e: asked.append(str(e)) or "keep") == []
    assert asked and "was closed" in asked[0]
    assert docker.results.count() == 1, "the result is not dropped"
    assert "was closed" in docker.progress.format()
    [node] = docker.apply(on_conflict=lambda p, e: "place")
    assert docker.results.count() == 0
    new = krita_app.documents()[-1]
    assert new is not doc and node.name() == "inpaint · classic-telea"


def test_docker_asks_before_placing_on_a_cropped_canvas(docker, krita_app, qapp):
    doc = make_document(krita_app, scene())
    assert docker.generate()
    wait_until(qapp, lambda: docker.results.count() == 1)
    doc.resizeImage(4, 4, W - 4, H - 4)
    assert docker.apply(on_conflict=lambda p, e: "discard") == []
    assert docker.results.count() == 0 and len(doc.topLevelNodes()) == 2


def test_docker_previews_the_selected_result_without_applying_it(docker, krita_app, qapp):
    doc = make_document(krita_app, scene())
    preview_name = "aiedit preview (not applied)"
    assert docker.generate()
    wait_until(qapp, lambda: docker.results.count() == 1)
    docker.results.item(0).setSelected(True)
    [preview] = [n for n in doc.topLevelNodes() if n.name() == preview_name]
    merged = np.frombuffer(bytes(doc.pixelData(0, 0, W, H)), np.uint8).reshape(H, W, 4)
    assert not ((merged[..., 2] > 200) & (merged[..., 1] < 40))[selected_area()].any(), \
        "the preview shows on the canvas"
    docker.preview_check.setChecked(False)
    assert preview_name not in [n.name() for n in doc.topLevelNodes()]
    docker.preview_check.setChecked(True)
    assert preview_name in [n.name() for n in doc.topLevelNodes()]
    [node] = docker.apply()
    names = [n.name() for n in doc.topLevelNodes()]
    assert preview_name not in names and node.name() in names
    np.testing.assert_array_equal(layer_rgba(doc.nodeByName("Background")), scene())


def test_docker_history_puts_a_jobs_settings_back(docker, krita_app, qapp):
    make_document(krita_app, scene())
    docker.form.fields["seed"].set(11)
    docker.form.fields["feather"].set(3)
    assert docker.generate()
    wait_until(qapp, lambda: docker.results.count() == 1)
    assert docker.history_combo.count() == 1
    assert "inpaint" in docker.history_combo.itemText(0)
    docker.form.fields["seed"].set(99)
    docker.form.fields["feather"].set(0)
    docker.operation_combo.setCurrentIndex(docker.operation_combo.findData("upscale"))
    assert docker.use_settings_again(0)
    assert docker.operation_combo.currentData() == "inpaint"
    assert docker.form.fields["seed"].value() == 11
    assert docker.form.fields["feather"].value() == 3


def test_a_job_in_flight_survives_a_docker_reload(plugin, docker, krita_app, qapp, docker_data):
    doc = make_document(krita_app, scene())
    assert docker.generate()
    journal = plugin.session.Journal(str(docker_data))
    wait_until(qapp, lambda: journal.entries())
    [entry] = journal.entries()
    # the plugin goes away mid-job: its thread's answers reach nobody
    thread = docker.job_thread
    for signal in (thread.succeeded, thread.failed, thread.canceled, thread.progress):
        signal.disconnect()
    thread.wait(15000)
    reloaded = plugin.docker.AieditDocker()
    wait_until(qapp, lambda: reloaded.results.count() == 1, timeout=20)
    assert reloaded.pending[0].job_id == entry["job_id"]
    [node] = reloaded.apply()
    assert node.name() == "inpaint · classic-telea"
    assert node in doc.topLevelNodes()
    assert node.childNodes()[1].bounds().getRect() == SELECTION, "masked like the original"
    assert journal.entries() == [], "applied: the journal forgets the job"
    reloaded.deleteLater()


def test_discarded_results_leave_the_journal(plugin, docker, krita_app, qapp, docker_data):
    make_document(krita_app, scene())
    assert docker.generate()
    wait_until(qapp, lambda: docker.results.count() == 1)
    journal = plugin.session.Journal(str(docker_data))
    assert len(journal.entries()) == 1, "finished but not applied: still journaled"
    docker.discard()
    assert journal.entries() == []


def test_account_buttons_open_the_servers_pages(docker, live_server, qapp):
    from PyQt5.QtCore import QObject, pyqtSlot
    from PyQt5.QtGui import QDesktopServices

    class Catcher(QObject):
        urls: list = []

        @pyqtSlot("QUrl")
        def open(self, url):
            self.urls.append(url.toString())

    catcher = Catcher()
    QDesktopServices.setUrlHandler("http", catcher, "open")
    try:
        docker.get_key_button.click()
        docker.buy_button.click()
    finally:
        QDesktopServices.unsetUrlHandler("http")
    assert catcher.urls == [live_server.url + "/account/keys",
                            live_server.url + "/account/credits"]


@pytest.mark.ml
def test_docker_shows_step_previews_of_a_diffusion_job(plugin, krita_app, tiny_server, qapp,
                                                       docker_data):
    krita_app.writeSetting("aiedit", "server_url", tiny_server.url)
    krita_app.writeSetting("aiedit", "operation", "generate")
    krita_app.writeSetting("aiedit", "model", "tiny-sdxl")
    dock = plugin.docker.AieditDocker()
    wait_until(qapp, lambda: dock.client is not None, timeout=15)
    make_document(krita_app, scene())
    dock.prompt.setPlainText("a fox")
    dock.form.fields["steps"].set(60)
    shown = []
    real = dock.show_step_preview

    def record(png):
        shown.append((real(png), not dock.step_preview.isHidden(),
                      dock.step_preview.pixmap().width() if dock.step_preview.pixmap() else 0))

    dock.show_step_preview = record
    assert dock.generate()
    wait_until(qapp, lambda: dock.results.count() == 1, timeout=120)
    assert shown, "no step preview reached the docker"
    assert all(ok and visible and width > 0 for ok, visible, width in shown)
    assert dock.step_preview.isHidden(), "the preview goes when the job ends"
    dock.deleteLater()


@pytest.mark.ml
def test_docker_sends_style_loras_control_layers_and_count(plugin, krita_app, tiny_server, qapp,
                                                           docker_data):
    """The docker offers the server's styles, LoRAs and the document's layers as control
    layers; Generate sends them, and the server receives the control layer's pixels."""
    import hashlib
    import json as json_module
    import sqlite3

    krita_app.writeSetting("aiedit", "server_url", tiny_server.url)
    krita_app.writeSetting("aiedit", "operation", "generate")
    krita_app.writeSetting("aiedit", "model", "tiny-sdxl")
    doc = make_document(krita_app, scene())
    sketch = doc.createNode("Sketch", "paintlayer")
    lines = np.zeros((H, W, 4), np.uint8)
    lines[::6] = 255
    sketch.setPixelData(bgra(lines), 0, 0, W, H)
    doc.rootNode().addChildNode(sketch, doc.rootNode().childNodes()[0])
    dock = plugin.docker.AieditDocker()
    wait_until(qapp, lambda: dock.client is not None, timeout=15)
    assert not dock.creative_box.isHidden()
    styles = [dock.style_combo.itemData(i) for i in range(dock.style_combo.count())]
    assert styles[0] == "" and "cinematic" in styles
    combo, weight = dock.lora_rows[0]
    assert combo.findData("tiny-lora-sdxl") > 0
    combo.setCurrentIndex(combo.findData("tiny-lora-sdxl"))
    weight.setValue(0.5)
    dock.style_combo.setCurrentIndex(dock.style_combo.findData("cinematic"))
    _row, layers, kinds, power = dock.add_control()
    assert [layers.itemText(i) for i in range(layers.count())] == ["Sketch", "Background"]
    kinds.setCurrentIndex(kinds.findText("scribble"))
    power.setValue(0.8)
    dock.prompt.setPlainText("a castle")
    dock.form.fields["seed"].set(5)
    dock.form.fields["steps"].set(2)
    dock.form.fields["count"].set(2)
    assert dock.generate()
    wait_until(qapp, lambda: dock.results.count() == 2, timeout=120)

    with sqlite3.connect(tiny_server.data_dir / "aiedit.sqlite3") as db:
        job_id, params, inputs = db.execute(
            "SELECT id, params, inputs FROM jobs ORDER BY created_at DESC LIMIT 1").fetchone()
    params, inputs = json_module.loads(params), json_module.loads(inputs)
    assert [(c["kind"], c["input"], c["strength"]) for c in params["control"]] == [
        ("scribble", "control0", 0.8)]
    assert params["loras"] == [{"id": "tiny-lora-sdxl", "weight": 0.5}]
    assert params["count"] == 2 and params["prompt"].startswith("cinematic film still of a castle")
    received = (tiny_server.data_dir / "blobs" / job_id / inputs["control0"]["blob"]).read_bytes()
    x, y, w, h = SELECTION
    assert hashlib.sha256(received).digest() == \
        hashlib.sha256(lines[y:y + h, x:x + w].tobytes()).digest(), \
        "the control layer's pixels over the job's region"
    assert [dock.results.item(i).text() for i in range(2)] == ["seed 5", "seed 6"]
    dock.deleteLater()


@pytest.mark.ml
def test_live_mode_follows_a_stroke_and_apply_makes_a_layer(plugin, krita_app, tiny_server,
                                                            qapp, docker_data):
    krita_app.writeSetting("aiedit", "server_url", tiny_server.url)
    krita_app.writeSetting("aiedit", "operation", "generate")
    krita_app.writeSetting("aiedit", "model", "tiny-sdxl")
    krita_app.writeSetting("aiedit", "live_interval_ms", "200")
    doc = make_document(krita_app, scene())
    dock = plugin.docker.AieditDocker()
    wait_until(qapp, lambda: dock.client is not None, timeout=15)
    dock.prompt.setPlainText("a fox")
    dock.strength.setValue(60)
    dock.form.fields["steps"].set(2)
    dock.form.fields["seed"].set(3)
    live_name = "aiedit live (not applied)"

    def live_pixels():
        node = doc.nodeByName(live_name)
        return None if node is None else bytes(node.pixelData(*SELECTION))

    dock.live_check.setChecked(True)
    try:
        wait_until(qapp, lambda: live_pixels() is not None, timeout=60)
    except AssertionError:
        raise AssertionError(dock.progress.format()) from None
    first = live_pixels()
    x, y, w, h = SELECTION
    assert doc.nodeByName(live_name).bounds().getRect() == (x, y, w, h)
    # a "stroke": the background changes under the selection; the live layer follows
    stroke = scene()
    stroke[y:y + h, x:x + w] = (20, 200, 40, 255)
    doc.nodeByName("Background").setPixelData(bgra(stroke), 0, 0, W, H)
    wait_until(qapp, lambda: live_pixels() not in (None, first), timeout=60)
    node = dock.apply_live()
    assert node.name().startswith("live generate · a fox")
    assert bytes(node.pixelData(*SELECTION)) == live_pixels(), "Apply copies the live result"
    dock.live_check.setChecked(False)
    assert doc.nodeByName(live_name) is None and node in doc.topLevelNodes()
    dock.deleteLater()
