"""What a benchmark returns, and how the table is printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    """`measured` and `baseline` are taken in the same run; `ratio` = measured / baseline.
    `target` is the ratio the issue asks for (None: a figure to report, not a goal).
    `unit` names what measured and baseline are in (s, MB, ...)."""

    name: str
    measured: float
    baseline: float
    target: float | None = None
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("inf")

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "ok" if self.ratio <= self.target else "MISSED"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of `repeats` timed calls (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def operation_call(operation: str, model_id: str, inputs: dict) -> Callable[[], float]:
    """`operation` with the catalog's `model_id` on `inputs` (the image region at 0, 0) in this
    process, as a worker runs it: the model loaded once, its catalog defaults applied, no
    progress sink. Returns a function that runs it once and returns the seconds it took."""
    from aiedit.engines import load
    from aiedit.engines.catalog import Catalog
    from aiedit.ops.base import OpContext, Progress, Region, registry

    op, entry = registry()[operation], Catalog.load().get(model_id)
    model = load(entry, "cpu")
    params = op.params().load({})
    params.update({k: v for k, v in entry.defaults.items() if params.get(k) is None})
    height, width = inputs["image"].shape[:2]

    def call() -> float:
        started = time.perf_counter()
        op.run(OpContext(params=params, inputs=inputs, region=Region(0, 0, width, height),
                         model=model, progress=Progress(lambda *a: None, lambda: False)))
        return time.perf_counter() - started

    return call


def tiny_hub(names: list[str]) -> Path:
    """The tests' HF cache of tiny models (tests/fixtures/tiny_server.py), with `names` built if
    missing (under the same lock the tests take)."""
    from tests.fixtures import tiny_diffusion
    from tests.fixtures.tiny_server import CACHE_ROOT
    from tests.helpers import cache_lock

    with cache_lock("tiny-models"):
        return tiny_diffusion.build_hub_cache(
            CACHE_ROOT / tiny_diffusion.versions_key() / "hub", names=names
        )


def tiny_sdxl_catalog(native_size: int) -> str:
    """A catalog file offering the tiny SDXL pipeline as model `bench-sdxl`."""
    from tests.fixtures import tiny_diffusion

    return f"""
[[model]]
id = "bench-sdxl"
operations = ["generate"]
engine = "diffusion"
licence = "test"
options = {{ native_size = {native_size} }}
[model.source]
repo = "{tiny_diffusion.ORG}/sdxl"
revision = "{tiny_diffusion.REVISION}"
pipeline = "StableDiffusionXLPipeline"
"""


def bare_sdxl_call(hub: Path, prompt: str, steps: int, size: int, seed: int,
                   threads: int | None = None) -> Callable[[], None]:
    """The bare call a job is measured against: the tiny SDXL pipeline from_pretrained, then
    `pipe(...)` with the job's arguments (on `threads` torch threads if given)."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    from tests.fixtures import tiny_diffusion

    if threads:
        torch.set_num_threads(threads)
    pipe = StableDiffusionXLPipeline.from_pretrained(
        f"{tiny_diffusion.ORG}/sdxl", cache_dir=str(hub), local_files_only=True
    )
    pipe.set_progress_bar_config(disable=True)

    def call():
        with torch.inference_mode():
            pipe(prompt=prompt, num_inference_steps=steps, width=size, height=size,
                 generator=torch.Generator("cpu").manual_seed(seed), output_type="pil")

    return call


def print_table(rows: list[Row]) -> None:
    header = f"{'benchmark':58} {'measured':>12} {'baseline':>12} {'ratio':>8} {'target':>8}  "
    print(header)
    print("-" * len(header))
    for r in rows:
        target = f"<= {r.target:g}" if r.target is not None else ""
        print(
            f"{r.name:58} {r.measured:>10.3f}{r.unit:>2} {r.baseline:>10.3f}{r.unit:>2} "
            f"{r.ratio:>8.3f} {target:>8}  {r.verdict}{('  ' + r.note) if r.note else ''}"
        )
