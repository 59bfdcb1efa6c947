"""The GIMP plug-in against a shim of the GIMP 3 API and a live `aiedit serve`."""

import json
import os
import stat

import aiedit_client as ac
import aiedit_gimp as host
import pytest
from gi.repository import Gegl, GLib

pytestmark = pytest.mark.e2e

BACKGROUND = bytes((30, 60, 90, 255))


def make_image(gimp, width=48, height=40, layer_offset=(0, 0), layer_size=None):
    image = gimp.Image.new(width, height, gimp.ImageBaseType.RGB)
    lw, lh = layer_size or (width, height)
    layer = gimp.Layer.new(image, "Background", lw, lh, gimp.ImageType.RGBA_IMAGE, 100.0,
                           gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(*layer_offset)
    buffer = layer.get_buffer()
    pattern = bytes(v for y in range(lh) for x in range(lw)
                    for v in ((x * 5) % 256, (y * 6) % 256, 90, 255))
    buffer.set(Gegl.Rectangle.new(0, 0, lw, lh), "R'G'B'A u8", pattern)
    buffer.flush()
    image.selected = [layer]
    return image, layer


@pytest.fixture
def plugin(plugin_entry):
    return plugin_entry.AieditPlugIn()


def run_procedure(gimp, plugin, name, image, drawables, **args):
    procedure = plugin.do_create_procedure(name)
    config = procedure.create_config()
    config.set_property("run-mode", gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    for key, value in args.items():
        config.set_property(key.replace("_", "-"), value)
    return procedure.run(config)


def assert_success(gimp, values):
    status, error = values.index(0), values.index(1)
    assert status == gimp.PDBStatusType.SUCCESS, error.message


def test_procedures_are_registered_under_the_ai_menu(gimp, plugin):
    plug_in = plugin
    names = plug_in.do_query_procedures()
    assert "plug-in-aiedit-inpaint" in names and "plug-in-aiedit-settings" in names
    assert "plug-in-aiedit-results" in names and "plug-in-aiedit-preprocess" in names
    assert len(names) == 10
    for name in names:
        procedure = plug_in.do_create_procedure(name)
        assert procedure.menu_paths == ["<Image>/Filters/AI (aiedit)"]
        assert {"server-url", "api-key"} <= set(procedure.arguments)
        if name not in ("plug-in-aiedit-settings", "plug-in-aiedit-results"):
            assert {"prompt", "model", "params"} <= set(procedure.arguments)


def test_inpaint_adds_a_masked_layer_above_the_active_one(gimp, plugin, live_server):
    image, layer = make_image(gimp)
    top = gimp.Layer.new(image, "Top", 48, 40, gimp.ImageType.RGBA_IMAGE, 100.0,
                         gimp.LayerMode.NORMAL)
    image.insert_layer(top, None, 0)
    image.select_rectangle(gimp.ChannelOps.REPLACE, 20, 15, 10, 8)
    before = image.composite().data
    values = run_procedure(gimp, plugin, "plug-in-aiedit-inpaint", image, [layer],
                           prompt="a red door", server_url=live_server.url,
                           params=json.dumps({"radius": 3}), context_margin=6)
    assert_success(gimp, values)
    names = [lay.get_name() for lay in image.get_layers()]
    assert names == ["Top", "Inpaint: a red door", "Background"]
    new = image.get_layers()[1]
    assert new.get_offsets() == (True, 14, 9)
    assert (new.get_width(), new.get_height()) == (22, 20)
    assert new.get_mask() is not None
    assert image.undo_groups == 1
    assert ("insert_layer", "Inpaint: a red door", 1) in image.undo_log
    after = image.composite()
    changed = [(i // 4) % 48 for i in range(0, len(before), 4)
               if before[i:i + 4] != bytes(after.data[i:i + 4])]
    changed_rows = [(i // 4) // 48 for i in range(0, len(before), 4)
                    if before[i:i + 4] != bytes(after.data[i:i + 4])]
    assert changed, "the inpainted layer changed nothing"
    assert 20 <= min(changed) and max(changed) < 30
    assert 15 <= min(changed_rows) and max(changed_rows) < 23
    assert host.journal().entries() == []
    texts = [entry[1] for entry in gimp.STATE["progress"] if entry[0] == "text"]
    assert texts[-1] == "Done"


def test_inpaint_without_selection_says_what_to_do(gimp, plugin, live_server):
    image, layer = make_image(gimp)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-inpaint", image, [layer],
                           server_url=live_server.url)
    assert values.index(0) == gimp.PDBStatusType.EXECUTION_ERROR
    # inpaint without a mask refines the whole image, which only diffusion models do: the
    # server's refusal for the default classic model reaches the user
    assert values.index(1).message == ("mask: model classic-telea fills holes and needs a "
                                       "mask; refining a whole image takes a diffusion model")


def test_visible_source_reads_all_visible_layers(gimp, live_server):
    image, layer = make_image(gimp, layer_size=(10, 10), layer_offset=(5, 5))
    plan = host.plan_job({"id": "restore", "region": "layer", "inputs": {"image": "required"}},
                         image, layer, "", "", {}, source="visible")
    assert (plan.region.width, plan.region.height) == (48, 40)
    assert plan.image.data[:4] == b"\0\0\0\0"
    at = (5 * 48 + 5) * 4
    assert plan.image.data[at:at + 4] == bytes((0, 0, 90, 255))
    plan = host.plan_job({"id": "restore", "region": "layer", "inputs": {"image": "required"}},
                         image, layer, "", "", {}, source="layer")
    assert (plan.region.x, plan.region.y, plan.region.width) == (5, 5, 10)


def test_upscale_opens_a_new_image_at_the_new_size(gimp, plugin, live_server):
    image, layer = make_image(gimp, 20, 16)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-upscale", image, [layer],
                           server_url=live_server.url, params='{"scale": 2}',
                           model="classic-lanczos")
    assert_success(gimp, values)
    new_image = gimp.get_images()[-1]
    assert new_image is not image
    assert (new_image.get_width(), new_image.get_height()) == (40, 32)
    assert len(image.get_layers()) == 1


def test_upscale_can_resize_this_image_instead(gimp, plugin, live_server):
    image, layer = make_image(gimp, 20, 16)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-upscale", image, [layer],
                           server_url=live_server.url, params='{"scale": 2}',
                           upscale_into="resize", model="classic-lanczos")
    assert_success(gimp, values)
    assert (image.get_width(), image.get_height()) == (40, 32)
    top = image.get_layers()[0]
    assert top.get_name() == "Upscale"
    assert (top.get_width(), top.get_height()) == (40, 32)
    assert image.undo_groups == 1


def test_restore_with_saved_settings(gimp, plugin, live_server):
    host.save_settings(server_url=live_server.url, api_key="")
    image, layer = make_image(gimp, 12, 10)
    assert_success(gimp, run_procedure(gimp, plugin, "plug-in-aiedit-restore", image, [layer],
                                       model="classic-denoise"))
    assert image.get_layers()[0].get_name() == "Restore"


def test_bad_params_json_is_reported(gimp, plugin, live_server):
    image, layer = make_image(gimp, 12, 10)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-restore", image, [layer],
                           params="{strength", server_url=live_server.url)
    assert values.index(1).message.startswith("params: not valid JSON")


def test_server_rejection_reaches_the_user(gimp, plugin, live_server):
    image, layer = make_image(gimp, 12, 10)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-upscale", image, [layer],
                           params='{"scale": 99}', server_url=live_server.url)
    assert values.index(0) == gimp.PDBStatusType.EXECUTION_ERROR
    assert "scale" in values.index(1).message


def test_unreachable_server_message(gimp, plugin, unused_url):
    image, layer = make_image(gimp, 12, 10)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-restore", image, [layer],
                           server_url=unused_url)
    assert values.index(1).message == (f"Cannot reach the aiedit server at {unused_url} — "
                                       "start it with `aiedit serve`")


def test_video_frames_become_animation_layers(gimp):
    image, layer = make_image(gimp, 8, 6)
    frames = [(ac.Result(i, "image", 8, 6, 0, 0, 7, f"/r/{i}"),
               ac.Pixels(8, 6, bytes((i * 40, 0, 0, 255)) * 48)) for i in range(3)]
    plan = host.Plan("video", "", {"fps": 25}, ac.Region(0, 0, 8, 6))
    host.insert_results(image, layer, plan, host.Outcome({"id": "x"}, frames))
    names = [lay.get_name() for lay in image.get_layers()]
    assert names == ["Frame 3 (40ms) (replace)", "Frame 2 (40ms) (replace)",
                     "Frame 1 (40ms) (replace)", "Background"]
    assert image.get_layers()[0].get_buffer().get(
        Gegl.Rectangle.new(0, 0, 1, 1), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE) == bytes(
        (80, 0, 0, 255))
    assert image.undo_groups == 1


def test_outpaint_grows_the_canvas(gimp):
    image, layer = make_image(gimp, 10, 8)
    result = ac.Result(0, "image", 16, 8, -4, 0, None, "/r/0")
    plan = host.Plan("outpaint", "", {"left": 4, "right": 2}, ac.Region(0, 0, 10, 8))
    host.insert_results(image, layer, plan,
                        host.Outcome({}, [(result, ac.Pixels(16, 8, BACKGROUND * 128))]))
    assert (image.get_width(), image.get_height()) == (16, 8)
    assert layer.get_offsets() == (True, 4, 0)
    assert image.get_layers()[0].get_offsets() == (True, 0, 0)


def test_outpaint_with_the_server_extends_left_and_top(gimp, plugin, live_server):
    image, layer = make_image(gimp, 12, 10)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-outpaint", image, [layer],
                           server_url=live_server.url,
                           params=json.dumps({"left": 4, "top": 2, "right": 0, "bottom": 0}))
    assert_success(gimp, values)
    assert (image.get_width(), image.get_height()) == (16, 12)
    new = image.get_layers()[0]
    assert new.get_offsets() == (True, 0, 0)
    assert (new.get_width(), new.get_height()) == (16, 12)
    assert layer.get_offsets() == (True, 4, 2)


def test_results_of_a_job_finished_after_a_crash_are_offered(gimp, live_server):
    client = ac.Client(live_server.url)
    job = client.submit("restore", image=ac.Pixels(6, 4, BACKGROUND * 24),
                        region=ac.Region(2, 3, 6, 4))
    host.journal().add(job["id"], server_url=client.url, operation="restore", prompt="",
                       region={"x": 2, "y": 3, "width": 6, "height": 4}, options={})
    client.wait(job["id"])
    image, layer = make_image(gimp, 12, 10)
    found = host.finished_earlier(client)
    assert [entry["job_id"] for entry, _ in found] == [job["id"]]
    (new,) = host.insert_recovered(client, image, layer, found[0][0], found[0][1], False)
    assert new.get_offsets() == (True, 2, 3)
    assert host.journal().entries() == []


def _restore_job(gimp, server):
    image, layer = make_image(gimp, 12, 10)
    client = ac.Client(server.url)
    plan = host.plan_job(client.operation("restore"), image, layer, "", "", {})
    outcome = host.execute(client, plan, host.GimpProgress("t"), watchdog=False)
    return image, layer, plan, outcome


def test_a_resized_image_stops_with_the_results_kept_by_default(gimp, plugin_entry,
                                                               live_server):
    image, layer, plan, outcome = _restore_job(gimp, live_server)
    image.resize(20, 10, 0, 0)
    with pytest.raises(ac.AieditError, match=r"^The image changed from 12x10 to 20x10 pixels "
                       r".* The results are kept: the next aiedit run offers them again\.$"):
        plugin_entry.place_results(image, layer, plan, outcome, False, "stop")
    assert [e["job_id"] for e in host.journal().entries()] == [outcome.job["id"]]
    assert [lay.get_name() for lay in image.get_layers()] == ["Background"]
    (placed,) = plugin_entry.place_results(image, layer, plan, outcome, False, "old-position")
    assert placed.get_offsets() == (True, 0, 0)
    assert plugin_entry.place_results(image, layer, plan, outcome, False, "discard") == []


def test_a_recovered_job_goes_to_the_image_it_came_from(gimp, live_server):
    image, layer, plan, outcome = _restore_job(gimp, live_server)
    entry = host.journal().entries()[0]
    assert entry["geometry"]["image_id"] == image.get_id()
    other, other_layer = make_image(gimp, 30, 30)
    found = host.finished_earlier(ac.Client(live_server.url))
    (new,) = host.insert_recovered(ac.Client(live_server.url), other, other_layer, found[0][0],
                                   found[0][1], False)
    assert new in image.get_layers() and len(other.get_layers()) == 1
    image.delete()
    with pytest.raises(host.ImageChanged, match="was closed while the job ran"):
        host.insert_results(image, layer, plan, outcome)


def test_a_recovered_inpaint_result_keeps_its_selection_mask(gimp, live_server):
    image, layer = make_image(gimp, 20, 16)
    image.select_rectangle(gimp.ChannelOps.REPLACE, 4, 4, 6, 5)
    client = ac.Client(live_server.url)
    plan = host.plan_job(client.operation("inpaint"), image, layer, "", "classic-telea",
                         {"strength": 0}, margin=2)
    host.execute(client, plan, host.GimpProgress("t"), watchdog=False)  # then "GIMP dies"
    assert os.path.exists(host.mask_path(host.journal().entries()[0]["job_id"]))
    image.select_rectangle(gimp.ChannelOps.REPLACE, 0, 0, 1, 1)  # the selection moved on
    (entry, job), = host.finished_earlier(client)
    (new,) = host.insert_recovered(client, image, layer, entry, job, False)
    rect = Gegl.Rectangle.new(0, 0, new.get_width(), new.get_height())
    assert new.get_mask().get_buffer().get(rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE) == \
        plan.mask.data
    assert host.journal().entries() == [] and not os.path.exists(host.mask_path(job["id"]))


def test_control_map_from_a_layer_is_a_new_layer(gimp, plugin, live_server):
    image, layer = make_image(gimp, 24, 20, layer_offset=(3, 2), layer_size=(16, 12))
    values = run_procedure(gimp, plugin, "plug-in-aiedit-preprocess", image, [layer],
                           server_url=live_server.url, params=json.dumps({"kind": "canny"}))
    assert_success(gimp, values)
    new = image.get_layers()[0]
    assert new.get_name() == "Control map"
    assert new.get_offsets() == (True, 3, 2) and (new.get_width(), new.get_height()) == (16, 12)
    assert new.get_mask() is None


def test_indexed_images_are_refused_with_what_to_do(gimp, live_server):
    image = gimp.Image.new(8, 8, gimp.ImageBaseType.INDEXED)
    with pytest.raises(ac.AieditError, match=r"indexed colours: convert it first with "
                       r"Image > Mode > RGB"):
        host.plan_job({"id": "generate"}, image, None, "", "", {})


def test_dialog_fields_follow_the_server_schema(gimp, live_server):
    inpaint = ac.Client(live_server.url).operation("inpaint")
    fields = {f["name"]: f for f in host.param_fields(inpaint, {"strength": 0.5})}
    assert "prompt" not in fields and "control" not in fields
    assert fields["strength"]["kind"] == "number" and fields["strength"]["value"] == 0.5
    values = {name: ("" if f["value"] is None else f["value"]) for name, f in fields.items()}
    params = host.collect_params(list(fields.values()), values)
    assert params["strength"] == 0.5 and "seed" not in params
    with pytest.raises(ac.AieditError, match="Seed: 'abc' is not a number"):
        host.collect_params([fields["seed"]], {"seed": "abc"})


def test_glib_error_carries_the_message(gimp):
    assert GLib.Error("x").message == "x"


def test_settings_file_is_created_readable_by_the_user_only(gimp, monkeypatch):
    old_umask = os.umask(0o022)
    modes = []
    real_replace = os.replace

    def replace(src, dst):  # the file's mode when it appears under its real name
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(host.os, "replace", replace)
    try:
        host.save_settings(server_url="http://127.0.0.1:1", api_key="aiedit_secret")
    finally:
        os.umask(old_umask)
    path = os.path.join(host.settings_dir(), "settings.json")
    assert modes == [0o600]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)  # written by an older version
    host.save_settings(api_key="aiedit_other")
    assert modes[-1] == 0o600 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert host.load_settings() == {"server_url": "http://127.0.0.1:1", "api_key": "aiedit_other"}


# -- no layer, a layer group or a text layer selected ---------------------------------------------

NO_LAYER = ("{title} works on a layer and no layer is selected: select one in the Layers panel, "
            "or send the visible image instead (Pixels from: Visible image)")


def image_with_group_and_text(gimp):
    """Background, then a group holding one small layer, then a text layer on top."""
    image, background = make_image(gimp, 48, 40)
    group = gimp.GroupLayer.new(image, "Group")
    image.insert_layer(group, None, 0)
    inner = gimp.Layer.new(image, "Inner", 10, 8, gimp.ImageType.RGBA_IMAGE, 100.0,
                           gimp.LayerMode.NORMAL)
    image.insert_layer(inner, group, 0)
    inner.set_offsets(6, 4)
    buffer = inner.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, 10, 8), "R'G'B'A u8", bytes((200, 10, 10, 255)) * 80)
    buffer.flush()
    text = gimp.TextLayer.new(image, "SALE", None, 12.0, None)
    image.insert_layer(text, None, 0)
    text.set_offsets(20, 24)
    return image, background, group, text


@pytest.mark.parametrize("op_id", ["edit", "inpaint", "outpaint", "upscale", "restore", "video"])
def test_without_a_layer_each_procedure_says_what_to_select(gimp, plugin, live_server, op_id):
    image, _ = make_image(gimp, 12, 10)
    image.select_rectangle(gimp.ChannelOps.REPLACE, 2, 2, 4, 4)
    image.selected = []
    values = run_procedure(gimp, plugin, f"plug-in-aiedit-{op_id}", image, [], prompt="x",
                           server_url=live_server.url)
    assert values.index(0) == gimp.PDBStatusType.EXECUTION_ERROR
    assert values.index(1).message == NO_LAYER.format(title=host.TITLES[op_id])
    assert [layer.get_name() for layer in image.get_layers()] == ["Background"]
    assert image.undo_groups == 0 and host.journal().entries() == []


def test_without_a_layer_the_visible_image_can_be_sent(gimp, plugin, live_server):
    image, _ = make_image(gimp, 12, 10)
    image.selected = []
    values = run_procedure(gimp, plugin, "plug-in-aiedit-restore", image, [], source="visible",
                           model="classic-denoise", server_url=live_server.url)
    assert_success(gimp, values)
    new = image.get_layers()[0]
    assert new.get_name() == "Restore" and new.get_offsets() == (True, 0, 0)
    assert (new.get_width(), new.get_height()) == (12, 10)


def test_restore_of_a_layer_group_reads_what_it_shows_and_goes_above_it(gimp, plugin,
                                                                        live_server):
    image, _, group, _ = image_with_group_and_text(gimp)
    plan = host.plan_job({"id": "restore", "region": "layer", "inputs": {"image": "required"}},
                         image, group, "", "", {})
    assert plan.region == ac.Region(6, 4, 10, 8)
    assert plan.image.data == bytes((200, 10, 10, 255)) * 80
    values = run_procedure(gimp, plugin, "plug-in-aiedit-restore", image, [group],
                           model="classic-denoise", server_url=live_server.url)
    assert_success(gimp, values)
    assert [layer.get_name() for layer in image.get_layers()] == [
        "SALE", "Restore", "Group", "Background"]
    new = image.get_layers()[1]
    assert new.get_offsets() == (True, 6, 4) and (new.get_width(), new.get_height()) == (10, 8)
    assert [layer.get_name() for layer in group.get_children()] == ["Inner"]


def test_inpaint_on_a_text_layer_adds_a_masked_layer_above_it(gimp, plugin, live_server):
    image, _, _, text = image_with_group_and_text(gimp)
    image.select_rectangle(gimp.ChannelOps.REPLACE, 22, 26, 6, 4)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-inpaint", image, [text],
                           model="classic-telea", context_margin=2, server_url=live_server.url)
    assert_success(gimp, values)
    names = [layer.get_name() for layer in image.get_layers()]
    assert names == ["Inpaint", "SALE", "Group", "Background"]
    new = image.get_layers()[0]
    assert new.get_mask() is not None and not new.is_text_layer()
    assert new.get_offsets() == (True, 20, 24)
    assert text.get_text() == "SALE", "the text layer itself is left alone"


def test_generate_with_no_layer_selected_draws_into_the_selection_on_top(gimp, plugin,
                                                                         tiny_server):
    image, _ = make_image(gimp, 96, 80)
    image.select_rectangle(gimp.ChannelOps.REPLACE, 16, 8, 64, 64)
    image.selected = []
    values = run_procedure(gimp, plugin, "plug-in-aiedit-generate", image, [],
                           prompt="a red fox", model="tiny-sdxl", params='{"seed": 7}',
                           server_url=tiny_server.url)
    assert_success(gimp, values)
    assert [layer.get_name() for layer in image.get_layers()] == [
        "Generate: a red fox (seed 7)", "Background"]
    new = image.get_layers()[0]
    assert new.get_offsets() == (True, 16, 8)
    assert (new.get_width(), new.get_height()) == (64, 64)


def test_generate_in_an_image_without_layers(gimp, plugin, tiny_server):
    image = gimp.Image.new(64, 64, gimp.ImageBaseType.RGB)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-generate", image, [], prompt="a boat",
                           model="tiny-sdxl", params='{"seed": 3}', server_url=tiny_server.url)
    assert_success(gimp, values)
    (new,) = image.get_layers()
    assert new.get_name() == "Generate: a boat (seed 3)"
    assert new.get_offsets() == (True, 0, 0) and (new.get_width(), new.get_height()) == (64, 64)


@pytest.mark.parametrize("selected", ["group", "text"])
def test_generate_goes_above_a_selected_group_or_text_layer(gimp, plugin, tiny_server,
                                                            selected):
    image, _, group, text = image_with_group_and_text(gimp)
    item = {"group": group, "text": text}[selected]
    image.select_rectangle(gimp.ChannelOps.REPLACE, 0, 0, 48, 40)
    values = run_procedure(gimp, plugin, "plug-in-aiedit-generate", image, [item],
                           prompt="a cloud", model="tiny-sdxl", params='{"seed": 5}',
                           server_url=tiny_server.url)
    assert_success(gimp, values)
    names = [layer.get_name() for layer in image.get_layers()]
    at = names.index(item.get_name())
    assert names[at - 1] == "Generate: a cloud (seed 5)"
    assert len(names) == 4
