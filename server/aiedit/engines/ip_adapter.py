"""IP-Adapter engine: a reference picture steers a diffusion pipeline through image-prompt
attention layers (diffusers' `load_ip_adapter`). Catalog entries name the adapter's weights file
and its CLIP image encoder inside one hub repo:

    source = { repo = "h94/IP-Adapter", file = "sdxl_models/ip-adapter_sdxl.safetensors",
               image_encoder = "sdxl_models/image_encoder" }
    options = { base = "sdxl" }

Loading reads the weights (safetensors only) and the image encoder once; a job's pipeline takes
them in while it needs them and gives them back after it (see `DiffusionModel.use_ip_adapter`),
so a job without a reference runs on the untouched base model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiedit.engines import devices, downloads, hub_files
from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry
from aiedit.errors import OperationError


def _files(entry: ModelEntry) -> list[str]:
    encoder = entry.source.get("image_encoder", "image_encoder")
    return [entry.source["file"], f"{encoder}/config.json", f"{encoder}/*.safetensors"]


def requirements(entry: ModelEntry) -> dict[str, str]:
    """Python packages this engine needs, and the extra that installs them."""
    return {name: "ml" for name in ("torch", "diffusers", "transformers", "safetensors")}


def is_installed(entry: ModelEntry) -> bool:
    return hub_files.is_installed(entry, _files(entry))


def prepare(entry: ModelEntry, report: downloads.Report | None = None) -> None:
    hub_files.prepare(entry, _files(entry), report)


def download(entry: ModelEntry, report: downloads.Report | None = None) -> Path:
    return hub_files.download(entry, _files(entry), report)


def remove(entry: ModelEntry) -> int:
    return hub_files.remove(entry)


@dataclass
class IPAdapter:
    """An adapter ready to go into a pipeline: its state dict in diffusers' two-part layout
    (`image_proj`, `ip_adapter`) and its image encoder."""

    id: str
    state_dict: dict[str, dict[str, Any]]
    image_encoder: Any
    image_size: int
    pipelines: set[int] = field(default_factory=set)  # ids of pipelines that hold it now


def read_weights(path: Path) -> dict[str, dict[str, Any]]:
    """The adapter's tensors split the way `load_ip_adapter` splits them; refuses a file that
    is not an IP-Adapter."""
    from safetensors import safe_open

    parts: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        for key in fh.keys():
            head, _, rest = key.partition(".")
            if head in parts:
                parts[head][rest] = fh.get_tensor(key)
    if not parts["image_proj"] or not parts["ip_adapter"]:
        raise OperationError(
            "engine_unsupported",
            f"{path.name} holds no IP-Adapter weights (no image_proj.* and ip_adapter.* tensors)",
        )
    return parts


def load(entry: ModelEntry, device: str) -> LoadedModel:
    from transformers import CLIPVisionModelWithProjection

    prepare(entry)
    device = devices.resolve(device)
    folder = hub_files.local_folder(entry)
    dtype = devices.dtype_for(device, entry)
    weights = read_weights(folder / entry.source["file"])
    for part in weights.values():
        for key, tensor in part.items():
            part[key] = tensor.to(dtype)
    encoder = CLIPVisionModelWithProjection.from_pretrained(
        str(folder / entry.source.get("image_encoder", "image_encoder")), dtype=dtype,
        use_safetensors=True,
    ).to(device)
    encoder.eval()
    size = sum(t.numel() * t.element_size() for part in weights.values() for t in part.values())
    size += sum(t.numel() * t.element_size() for t in encoder.parameters())
    adapter = IPAdapter(entry.id, weights, encoder, int(encoder.config.image_size))
    return LoadedModel(entry=entry, engine="ip_adapter", obj=adapter, device=device,
                       size_bytes=size, info={"image_size": adapter.image_size})
