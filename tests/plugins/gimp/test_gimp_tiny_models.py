"""Real AI jobs in real GIMP 3: the installed plug-in runs tiny random diffusion pipelines on a
live `aiedit serve` (the `tiny_server` fixture); the saved files are checked from outside GIMP."""


import numpy as np
import pytest
import test_gimp_real as real
from PIL import Image
from xcf_file import read_xcf

from tests.helpers import latest_job, result_pixels

pytestmark = [pytest.mark.gimp, pytest.mark.ml]

gimp_chroot = real.gimp_chroot


@pytest.fixture
def gimp(gimp_chroot, tmp_path):
    return real.Gimp(tmp_path)


def gradient(width: int, height: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = [xs * 255 // width, ys * 255 // height, np.full_like(xs, 90)]
    return np.dstack([*rgb, np.full_like(xs, 255)]).astype(np.uint8)


def saved_png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def test_video_job_becomes_frame_layers_in_real_gimp(gimp, tiny_server):
    source = gradient(40, 30)
    Image.fromarray(source, "RGBA").save(gimp.work / "input.png")
    report = gimp.batch(f'''
        image = load(W + "/input.png")
        call("plug-in-aiedit-video", image, image.get_layers(), prompt="waves",
             model="tiny-ltx-video", params='{{"frames": 9, "fps": 8, "seed": 3}}',
             **{{"server-url": "{tiny_server.url}"}})
        save(image, W + "/out.xcf")
        save(image, W + "/out.png")
        report(layers=layers(image), open_group=image.undo_group_end())
    ''')
    assert report["open_group"] is False, "the plug-in left an undo group open"
    job = latest_job(tiny_server, "video")
    frames = [r for r in job["results"] if r["kind"] == "image"]
    assert len(frames) == 9
    names = [f"Frame {n} (125ms) (replace)" for n in range(9, 0, -1)]

    xcf = read_xcf(gimp.work / "out.xcf")
    assert (xcf.width, xcf.height) == (40, 30)
    assert [layer.name for layer in xcf.layers] == [*names, "Background"]
    assert all((la.width, la.height, la.x, la.y) == (40, 30, 0, 0) for la in xcf.layers)
    assert [la["name"] for la in report["layers"]] == [*names, "Background"]

    flattened = saved_png(gimp.work / "out.png")
    np.testing.assert_array_equal(flattened, result_pixels(tiny_server, frames[-1]),
                                  "the top layer is the last frame, pixel for pixel")
    assert not np.array_equal(flattened, source)


def test_generate_job_adds_a_layer_at_the_selection_in_real_gimp(gimp, tiny_server):
    source = gradient(96, 80)
    Image.fromarray(source, "RGBA").save(gimp.work / "input.png")
    gimp.batch(f'''
        image = load(W + "/input.png")
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 16, 8, 64, 64)
        call("plug-in-aiedit-generate", image, image.get_layers(), prompt="a red fox",
             model="tiny-sdxl", params='{{"seed": 7}}',
             **{{"server-url": "{tiny_server.url}"}})
        save(image, W + "/out.xcf")
        save(image, W + "/out.png")
        report()
    ''')
    xcf = read_xcf(gimp.work / "out.xcf")
    assert [layer.name for layer in xcf.layers] == ["Generate: a red fox (seed 7)", "Background"]
    new = xcf.layers[0]
    assert (new.x, new.y, new.width, new.height) == (16, 8, 64, 64)

    (result,) = latest_job(tiny_server, "generate")["results"]
    assert result["seed"] == 7 and result["offset"] == {"x": 16, "y": 8}
    flattened = saved_png(gimp.work / "out.png")
    np.testing.assert_array_equal(flattened[8:72, 16:80], result_pixels(tiny_server, result))
    outside = np.ones((80, 96), bool)
    outside[8:72, 16:80] = False
    np.testing.assert_array_equal(flattened[outside], source[outside])
