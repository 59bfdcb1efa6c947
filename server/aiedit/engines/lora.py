"""LoRA engine: small weight deltas a diffusion pipeline loads on top of its own
(`load_lora_weights`). They come from catalog entries

    source = { repo = "nerijs/pixel-art-xl", file = "pixel-art-xl.safetensors" }
    options = { base = "sdxl" }

or from the safetensors files in a folder (setting `lora_dir`, AIEDIT_LORA_DIR): each file is a
LoRA with id `lora:<file stem>`, its base read from the file's metadata (kohya's
`ss_base_model_version`, `modelspec.architecture`) or, failing that, from its tensor names.
Only safetensors files are read (no pickles). A LoRA is never loaded alone: a job's pipeline
loads it once and keeps it (see `DiffusionModel.use_loras`).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from aiedit.engines import downloads, hub_files
from aiedit.engines.catalog import ModelEntry
from aiedit.errors import OperationError

FOLDER_PREFIX = "lora:"


def _files(entry: ModelEntry) -> list[str]:
    return [entry.source.get("file", "pytorch_lora_weights.safetensors")]


def weights_file(entry: ModelEntry) -> Path | None:
    if "path" in entry.source and Path(entry.source["path"]).suffix == ".safetensors":
        path = Path(entry.source["path"]).expanduser()
        return path if path.is_file() else None
    folder = hub_files.local_folder(entry)
    if folder is None:
        return None
    path = folder / _files(entry)[0]
    return path if path.is_file() else None


def requirements(entry: ModelEntry) -> dict[str, str]:
    """Python packages this engine needs, and the extra that installs them."""
    return {name: "ml" for name in ("torch", "diffusers", "peft")}


def is_installed(entry: ModelEntry) -> bool:
    """The weights file is there and whole (not a download cut off half-way)."""
    path = weights_file(entry)
    return path is not None and downloads.safetensors_problem(path) is None


def prepare(entry: ModelEntry, report: downloads.Report | None = None) -> None:
    if "path" not in entry.source:
        hub_files.prepare(entry, _files(entry), report)
    elif not is_installed(entry):
        raise OperationError("model_not_available",
                             f"LoRA {entry.id}: {entry.source['path']} is gone")


def download(entry: ModelEntry, report: downloads.Report | None = None) -> Path:
    return hub_files.download(entry, _files(entry), report)


def remove(entry: ModelEntry) -> int:
    return hub_files.remove(entry)


def load(entry: ModelEntry, device: str):
    raise OperationError("engine_unsupported",
                         f"{entry.id} is a LoRA: name it in a job's `loras`, not as its model")


# --- a folder of LoRA files -----------------------------------------------------------------------


def header(path: Path) -> dict:
    """The safetensors header (tensor names, metadata) without reading the tensors."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", head)
        if length > 100_000_000:
            raise ValueError("not a safetensors file (header too large)")
        return json.loads(fh.read(length))


def base_of(path: Path) -> str | None:
    """sdxl, flux or None (unknown) for a LoRA file."""
    head = header(path)
    meta = head.get("__metadata__") or {}
    text = f"{meta.get('modelspec.architecture', '')} {meta.get('ss_base_model_version', '')}"
    text = text.lower()
    if "flux" in text:
        return "flux"
    if "xl" in text:
        return "sdxl"
    names = [name for name in head if name != "__metadata__"]
    if any(n.startswith("transformer.") or "double_blocks" in n for n in names):
        return "flux"
    if any(n.startswith(("text_encoder_2.", "lora_te2_")) for n in names):
        return "sdxl"
    if any(n.startswith(("unet.", "lora_unet_")) for n in names):
        return "sdxl"  # the only UNet family this server runs
    return None


def scan(folder: str | Path) -> list[ModelEntry]:
    """A catalog entry for each safetensors file in `folder` (not its subfolders)."""
    entries = []
    for path in sorted(Path(folder).expanduser().glob("*.safetensors")):
        try:
            base = base_of(path)
        except (OSError, ValueError) as exc:
            base, problem = None, f" (unreadable: {exc})"
        else:
            problem = "" if base else " (base model unknown: declare it in a catalog entry)"
        entries.append(ModelEntry(
            id=FOLDER_PREFIX + re.sub(r"\s+", "-", path.stem),
            name=path.stem,
            operations=("lora",),
            engine="lora",
            source={"path": str(path)},
            download_size=path.stat().st_size,
            options={"base": base} if base else {},
            description=f"LoRA file {path.name} from the LoRA folder{problem}",
        ))
    return entries
