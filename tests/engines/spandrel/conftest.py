"""Tiny spandrel nets built from spandrel's own architectures, saved as `.pth` files and listed
in a user catalog file, so jobs load them through the production catalog -> engine path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aiedit.config import Config

TINY_MODELS = {
    # id: (operations, file name, extra source keys)
    "tiny-compact-x4": (["upscale"], "compact_x4.pth", ""),
    "tiny-esrgan-x2": (["upscale"], "esrgan_x2.pth", ""),
    "tiny-scunet": (["restore"], "scunet.pth", ""),
    "tiny-gfpgan": (["restore"], "gfpgan.pth", ""),
    "tiny-codeformer": (["restore"], "codeformer.pth", ", extra_arches = true"),
}


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-weights")


@pytest.fixture(autouse=True)
def models_dir(tmp_path_factory, monkeypatch) -> Path:
    """Converted and downloaded weights go to a temp dir, shared by the session."""
    path = tmp_path_factory.getbasetemp() / "models"
    monkeypatch.setenv("AIEDIT_MODELS_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def catalog_file(weights_dir) -> Path:
    lines = []
    for model_id, (operations, file_name, extra) in TINY_MODELS.items():
        lines += ["[[model]]", f'id = "{model_id}"', f"operations = {operations!r}".replace(
            "'", '"'), 'engine = "spandrel"',
            f'source = {{ path = "{weights_dir / file_name}"{extra} }}',
            'licence = "MIT"', ""]
    path = weights_dir / "catalog.toml"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def config(tmp_path, catalog_file) -> Config:
    return Config(data_dir=tmp_path / "data", testing=True, catalog_file=str(catalog_file))


def _save(model: torch.nn.Module, path: Path) -> Path:
    if not path.exists():
        torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_compact(weights_dir) -> Path:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4)
    return _save(net, weights_dir / "compact_x4.pth")


@pytest.fixture(scope="session")
def tiny_esrgan(weights_dir) -> Path:
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(1)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
    return _save(net, weights_dir / "esrgan_x2.pth")


@pytest.fixture(scope="session")
def tiny_scunet(weights_dir) -> Path:
    from spandrel.architectures.SCUNet import SCUNet

    torch.manual_seed(2)
    net = SCUNet(in_nc=3, config=[1] * 7, dim=64, drop_path_rate=0.0, input_resolution=256)
    return _save(net, weights_dir / "scunet.pth")


@pytest.fixture(scope="session")
def tiny_gfpgan(weights_dir) -> Path:
    """GFPGAN at its only size spandrel detects (512, channel multiplier 2), random weights."""
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(3)
    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                 fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                 sft_half=True)
    return _save(net, weights_dir / "gfpgan.pth")


@pytest.fixture(scope="session")
def tiny_codeformer(weights_dir) -> Path:
    """CodeFormer with a small transformer (encoder and generator are fixed-size)."""
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    torch.manual_seed(4)
    net = CodeFormer(dim_embd=64, n_head=8, n_layers=1, codebook_size=64, latent_size=256)
    return _save(net, weights_dir / "codeformer.pth")


def face_photo(size: int = 256) -> np.ndarray:
    """scikit-image's astronaut photo (one frontal face), RGBA."""
    from PIL import Image
    from skimage import data

    rgb = np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.LANCZOS))
    return np.dstack([rgb, np.full((size, size), 255, np.uint8)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
