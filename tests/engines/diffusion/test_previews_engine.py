"""Step previews below the API: a tiny autoencoder named by the catalog entry decodes them; one
that is not downloaded falls back to the cheap approximation, and the job still gets previews."""

from __future__ import annotations

import pytest

from aiedit.engines import diffusion
from aiedit.engines.catalog import ModelEntry
from aiedit.ops.base import Progress
from tests.fixtures import tiny_diffusion

pytestmark = pytest.mark.ml


def tiny_sdxl(preview_vae: str) -> diffusion.DiffusionModel:
    entry = ModelEntry(
        id="tiny-sdxl-previews",
        name="tiny SDXL with a preview decoder",
        operations=("generate",),
        engine="diffusion",
        source={"repo": f"{tiny_diffusion.ORG}/sdxl", "revision": tiny_diffusion.REVISION,
                "pipeline": "StableDiffusionXLPipeline"},
        licence="test",
        options={"native_size": 64, "preview_vae": preview_vae},
    )
    return diffusion.load(entry, "cpu").obj


def run_with_previews(model) -> list:
    shown = []
    progress = Progress(lambda *a: None, lambda: False, lambda step, px: shown.append((step, px)))
    model(progress, seed=2, prompt="a kite", steps=3, width=64, height=64)
    return shown


def test_a_tiny_autoencoder_named_by_the_entry_decodes_the_previews(tiny_hub, tmp_path):
    from diffusers import AutoencoderTiny

    AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4,
    ).save_pretrained(tmp_path / "taesd")
    model = tiny_sdxl(str(tmp_path / "taesd"))
    model.previewer._tiny_vae("cpu")  # load it now, to watch its decoder
    tiny = model.previewer._tiny
    assert isinstance(tiny, AutoencoderTiny)
    calls = []
    tiny.decoder.register_forward_hook(lambda *a: calls.append(1))
    shown = run_with_previews(model)
    assert shown and len(calls) == len(shown)
    step, pixels = shown[0]
    assert step == 1 and pixels.shape == (64, 64, 3) and pixels.dtype.name == "uint8"


def test_a_preview_decoder_not_downloaded_falls_back_to_the_approximation(tiny_hub):
    model = tiny_sdxl("madebyollin/taesd")  # offline, not in the tiny cache
    shown = run_with_previews(model)
    assert model.previewer._tiny is False
    assert shown and shown[0][1].shape == (64, 64, 3)
