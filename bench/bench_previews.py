"""Step previews: a diffusion run with previews against the same run without.

Both go through the engine's `DiffusionModel` call (the tiny SDXL pipeline loaded by hub id from
a HF cache with the hub offline, 256 px, 20 steps, the same seed); the previewed run hands its
previews to a sink that encodes each as the PNG the API serves, as a job's progress does.
Measured alternately, best of each, with one torch thread (on a shared machine, OpenMP threads
that wait for a busy core make every run many times slower and the ratio noise). Target: with
previews / without <= 1.05."""

from __future__ import annotations

import os

from bench.common import Row, tiny_hub
from tests.fixtures import tiny_diffusion

REPEATS = 3
SIZE, STEPS, SEED, PROMPT = 128, 20, 5, "a lighthouse at dusk"


def tiny_sdxl(native_size: int = SIZE):
    """The tiny SDXL pipeline loaded through the engine, as a job's model."""
    hub = tiny_hub(["sdxl"])
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_CACHE"] = str(hub)
    from aiedit.engines import diffusion
    from aiedit.engines.catalog import ModelEntry

    entry = ModelEntry(
        id="bench-sdxl",
        name="bench tiny SDXL",
        operations=("generate",),
        engine="diffusion",
        source={"repo": f"{tiny_diffusion.ORG}/sdxl", "revision": tiny_diffusion.REVISION,
                "pipeline": "StableDiffusionXLPipeline"},
        licence="test",
        options={"native_size": native_size},
    )
    return diffusion.load(entry, "cpu").obj


def main() -> list[Row]:
    import time

    import torch

    from aiedit.imaging.codec import encode

    torch.set_num_threads(1)
    from aiedit.ops.base import Progress

    model = tiny_sdxl()
    shown = []

    def sink(step, pixels):
        import numpy as np

        alpha = np.full(pixels.shape[:2] + (1,), 255, np.uint8)
        shown.append((step, encode(np.ascontiguousarray(np.concatenate([pixels, alpha], 2)))))

    def run(previews: bool) -> float:
        progress = Progress(lambda *a: None, lambda: False, sink if previews else None)
        started = time.perf_counter()
        model(progress, seed=SEED, prompt=PROMPT, steps=STEPS, width=SIZE, height=SIZE)
        return time.perf_counter() - started

    run(True)  # warm-up (and the first decode's one-off set-up)
    with_previews, without = [], []
    for _ in range(REPEATS):
        without.append(run(False))
        with_previews.append(run(True))
    per_run = len(shown) / (REPEATS + 1)
    return [
        Row(
            f"previews: diffusion run with step previews / without ({SIZE}px, {STEPS} steps)",
            min(with_previews),
            min(without),
            target=1.05,
            note=f"{per_run:.1f} previews a run",
        ),
    ]


if __name__ == "__main__":
    from bench.common import print_table

    print_table(main())
