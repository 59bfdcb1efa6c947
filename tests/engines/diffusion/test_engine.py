"""The diffusion engine below the API: file selection, memory plans, per-step progress, the
out-of-memory retry, download progress, and the `aiedit models` commands on a real HF cache."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aiedit.cli import main
from aiedit.engines import devices, diffusion, downloads
from aiedit.engines.catalog import Catalog, ModelEntry
from aiedit.ops.base import Canceled, OperationError, Progress
from tests.engines.diffusion.conftest import TINY_CATALOG

pytestmark = pytest.mark.ml
GB = 1_000_000_000


def entry(model_id: str) -> ModelEntry:
    return Catalog.load(TINY_CATALOG).get(model_id)


class Recorder(Progress):
    """Progress that records each report and cancels after `cancel_after` reports."""

    def __init__(self, cancel_after: int | None = None):
        self.calls: list[tuple[int, int, str]] = []
        limit = float("inf") if cancel_after is None else cancel_after
        super().__init__(lambda *call: self.calls.append(call), lambda: len(self.calls) > limit)


def test_select_files_takes_one_variant_of_each_component_and_no_root_checkpoints():
    sizes = {
        name: 1
        for name in [
            "model_index.json",
            "sd_xl_base_1.0.safetensors",
            "README.md",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.bin",
            "text_encoder/config.json",
            "text_encoder/model.safetensors",
            "text_encoder/model.fp16.safetensors",
            "tokenizer/vocab.json",
            "tokenizer/merges.txt",
            "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            "vae_1_0/diffusion_pytorch_model.safetensors",
        ]
    }
    chosen = diffusion.select_files(
        sizes, ["unet", "text_encoder", "tokenizer", "transformer"], "fp16"
    )
    assert chosen == sorted(
        [
            "model_index.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors",
            "tokenizer/merges.txt",
            "tokenizer/vocab.json",
            "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
        ]
    )


def test_memory_plan_follows_free_memory_and_catalog_overrides():
    base = ModelEntry(
        id="m", name="m", operations=("generate",), engine="diffusion", memory=10 * GB
    )
    assert devices.plan(base, "cuda", free=20 * GB) == devices.MemoryPlan()
    assert devices.plan(base, "cuda", free=9 * GB) == devices.MemoryPlan(True, True, False)
    assert devices.plan(base, "cuda", free=5 * GB) == devices.MemoryPlan(True, True, True)
    assert devices.plan(base, "cpu", free=5 * GB).cpu_offload is False
    forced = ModelEntry(
        id="m",
        name="m",
        operations=("generate",),
        engine="diffusion",
        memory=10 * GB,
        options={"vae_tiling": True, "attention_slicing": False},
    )
    assert devices.plan(forced, "cuda", free=5 * GB) == devices.MemoryPlan(True, False, True)


@pytest.mark.parametrize(
    "cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    """Holds on any machine: what torch reports is set here, not taken from the hardware."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert devices.resolve("auto") == expected
    assert devices.resolve("") == expected
    assert devices.resolve("cpu") == "cpu" and devices.resolve("cuda:1") == "cuda:1"


def test_each_denoising_step_is_reported_and_cancel_stops_at_the_next(tiny_hub):
    model = diffusion.load(entry("tiny-flux"), "auto").obj
    recorder = Recorder()
    result = model(recorder, seed=3, prompt="a cat", steps=4, width=32, height=32)
    assert [c[:2] for c in recorder.calls] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert result.seed == 3 and result.images[0].size == (32, 32)
    stopping = Recorder(cancel_after=2)
    with pytest.raises(Canceled):
        model(stopping, prompt="a cat", steps=10, width=32, height=32)
    assert max(step for step, _, _ in stopping.calls) < 10


def test_out_of_memory_retries_once_with_the_lowest_settings_then_fails_clearly(tiny_hub):
    import torch

    model = diffusion.load(entry("tiny-flux"), "cpu").obj
    decode = model.pipe.vae.decode
    failures = {"left": 1}

    def flaky_decode(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return decode(*args, **kwargs)

    model.pipe.vae.decode = flaky_decode
    result = model(Recorder(), seed=1, prompt="x", steps=2, width=32, height=32)
    assert result.images and model.plan == devices.lowest(model.entry, "cpu")
    failures["left"] = 2
    with pytest.raises(OperationError) as err:
        model(Recorder(), seed=1, prompt="x", steps=2, width=32, height=32)
    assert err.value.code == "out_of_memory" and "tiny-flux" in err.value.message
    model.pipe.vae.decode = decode


def test_missing_model_offline_says_how_to_get_it(tiny_hub):
    with pytest.raises(OperationError) as err:
        diffusion.load(entry("tiny-not-downloaded"), "cpu")
    assert err.value.code == "model_not_available"
    assert "`aiedit models pull tiny-not-downloaded`" in err.value.message


def test_download_progress_bars_feed_the_tracker():
    tracker = downloads.DownloadTracker()
    tracker.start("m", 300)
    bar_class = downloads.make_tqdm(tracker.reporter("m"))
    with bar_class(total=300, unit="B", desc="Reconstructing") as bar:
        bar.update(100)
        assert tracker.get("m") == {"state": "downloading", "bytes_done": 100, "bytes_total": 300}
        bar.update(200)
    with bar_class(total=3, desc="Fetching 3 files") as files:
        files.update(1)  # file counts are not bytes
    tracker.finish("m", ok=True)
    assert tracker.snapshot() == {"m": {"state": "done", "bytes_done": 300, "bytes_total": 300}}


def run_cli(*args):
    result = CliRunner().invoke(main, [*args, "--catalog-file", str(TINY_CATALOG)])
    return result.exit_code, result.output


def test_models_verify_finds_a_truncated_weights_file(scratch_hub):
    code, out = run_cli("models", "verify", "tiny-sdxl")
    assert code == 0 and "tiny-sdxl: ok" in out
    weights = (
        diffusion.local_folder(entry("tiny-sdxl")) / "vae" / "diffusion_pytorch_model.safetensors"
    )
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])
    code, out = run_cli("models", "verify", "tiny-sdxl")
    assert code != 0
    assert "vae/diffusion_pytorch_model.safetensors: truncated" in out


def test_models_remove_deletes_the_files_and_pull_offline_explains(scratch_hub):
    assert diffusion.is_installed(entry("tiny-wan-i2v"))
    code, out = run_cli("models", "remove", "tiny-wan-i2v", "--yes")
    assert code == 0, out
    assert not diffusion.is_installed(entry("tiny-wan-i2v"))
    assert not downloads.repo_folder("tiny/wan-i2v").exists()
    code, out = run_cli("models", "pull", "tiny-wan-i2v")
    assert code != 0 and "download failed" in out
    code, out = run_cli("models", "pull", "tiny-sdxl")
    assert code == 0 and "already downloaded" in out
