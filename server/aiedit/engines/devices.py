"""Devices, precision and memory settings for diffusion pipelines.

`resolve("auto")` picks cuda > mps > cpu. `plan(entry, device)` decides which memory savers to turn
on from the free memory and the entry's `memory`; an entry's `options` override any of them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aiedit.engines.catalog import ModelEntry

SAVERS = ("vae_tiling", "attention_slicing", "cpu_offload")
ROOM = 1.2  # free memory must exceed the model's need by this factor to run without savers


@dataclass(frozen=True)
class MemoryPlan:
    """Which memory savers a pipeline runs with."""

    vae_tiling: bool = False
    attention_slicing: bool = False
    cpu_offload: bool = False

    def describe(self) -> str:
        on = [name for name in SAVERS if getattr(self, name)]
        return ", ".join(on) or "none"


def resolve(device: str) -> str:
    """'auto' -> the best device present (cuda > mps > cpu); anything else unchanged."""
    if device and device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def dtype_for(device: str, entry: ModelEntry):
    """bf16 on CUDA when supported (else fp16), fp16 on MPS, fp32 on CPU; `options.dtype` wins."""
    import torch

    wanted = entry.options.get("dtype")
    if wanted:
        return {
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
            "float16": torch.float16,
            "fp32": torch.float32,
            "float32": torch.float32,
        }[wanted]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def free_bytes(device: str) -> int:
    """Memory free for a model on `device`: GPU memory on CUDA, available RAM otherwise."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        free, _total = torch.cuda.mem_get_info(index)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def plan(entry: ModelEntry, device: str, free: int | None = None) -> MemoryPlan:
    """Memory savers for `entry` on `device`: none when there is room, more as room shrinks."""
    need = entry.memory
    free = free_bytes(device) if free is None else free
    chosen = MemoryPlan()
    if need and free < need * ROOM:
        chosen = MemoryPlan(vae_tiling=True, attention_slicing=True)
        if free < need * 0.7 and device.startswith("cuda"):
            chosen = replace(chosen, cpu_offload=True)
    return _with_overrides(chosen, entry)


def lowest(entry: ModelEntry, device: str) -> MemoryPlan:
    """The plan that needs least memory on `device` (what an out-of-memory retry uses)."""
    return MemoryPlan(
        vae_tiling=True, attention_slicing=True, cpu_offload=device.startswith("cuda")
    )


def _with_overrides(chosen: MemoryPlan, entry: ModelEntry) -> MemoryPlan:
    forced = {name: bool(entry.options[name]) for name in SAVERS if name in entry.options}
    return replace(chosen, **forced)


def apply(pipe, chosen: MemoryPlan, device: str) -> None:
    """Move `pipe` to `device` (or set up offloading) and switch the chosen savers on or off."""
    if chosen.cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        (vae.enable_tiling if chosen.vae_tiling else vae.disable_tiling)()
    if chosen.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        try:
            pipe.enable_attention_slicing()
        except (AttributeError, NotImplementedError, ValueError):
            pass  # models on the attention dispatcher have no slicing; tiling still helps


def release(device: str) -> None:
    """Return cached allocator memory to the device after a model is dropped or on OOM."""
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.startswith("mps") and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
