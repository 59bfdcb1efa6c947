"""ControlNet engine: ControlNets (SDXL, FLUX, union models) that steer a diffusion pipeline.

    source = { repo = "diffusers/controlnet-canny-sdxl-1.0", class = "ControlNetModel" }

`class` is the diffusers model class (ControlNetModel, ControlNetUnionModel,
FluxControlNetModel); `subfolder` and `variant` as in `from_pretrained`. In `options`, `kinds`
lists the control maps it follows, `base` the family of weights it fits (sdxl, flux), and for
union models `modes` maps each kind to its control mode number. A job combines it with its
pipeline through diffusers' `from_pipe` (see `DiffusionModel.pipeline_for`).
"""

from __future__ import annotations

from pathlib import Path

from aiedit.engines import devices, downloads, hub_files
from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry
from aiedit.errors import OperationError

FILES = ["config.json", "*.safetensors"]
CLASSES = ("ControlNetModel", "ControlNetUnionModel", "FluxControlNetModel")


def requirements(entry: ModelEntry) -> dict[str, str]:
    """Python packages this engine needs, and the extra that installs them."""
    return {name: "ml" for name in ("torch", "diffusers", "huggingface_hub")}


def is_installed(entry: ModelEntry) -> bool:
    return hub_files.is_installed(entry, FILES)


def prepare(entry: ModelEntry, report: downloads.Report | None = None) -> None:
    hub_files.prepare(entry, FILES, report)


def download(entry: ModelEntry, report: downloads.Report | None = None) -> Path:
    return hub_files.download(entry, FILES, report)


def remove(entry: ModelEntry) -> int:
    return hub_files.remove(entry)


def load(entry: ModelEntry, device: str) -> LoadedModel:
    import diffusers

    prepare(entry)
    device = devices.resolve(device)
    name = entry.source.get("class", "ControlNetModel")
    cls = getattr(diffusers, name, None) if name in CLASSES else None
    if cls is None:
        raise OperationError(
            "engine_unsupported",
            f"ControlNet {entry.id}: class {name!r} is not one of {', '.join(CLASSES)} "
            f"in this diffusers ({diffusers.__version__})",
        )
    kwargs = {"torch_dtype": devices.dtype_for(device, entry), "use_safetensors": True}
    if entry.source.get("variant"):
        kwargs["variant"] = entry.source["variant"]
    model = cls.from_pretrained(str(hub_files.local_folder(entry)), **kwargs).to(device)
    model.eval()
    size = sum(t.numel() * t.element_size() for t in model.parameters())
    return LoadedModel(entry=entry, engine="controlnet", obj=model, device=device,
                       size_bytes=size, info={"class": name})
