"""Detector engine: networks that turn a picture into a control map (depth, line art, pose).

An entry's `source` names the hub repo, the files it needs and the loader that runs them:

    source = { repo = "depth-anything/Depth-Anything-V2-Small-hf", loader = "depth" }
    source = { repo = "lllyasviel/Annotators", loader = "lineart",
               files = ["sk_model.pth", "sk_model2.pth"] }

`depth` loads any transformers depth-estimation model (AutoModelForDepthEstimation through
transformers' `pipeline`); `lineart` loads controlnet-aux's line-art generator. Files resolve
through the Hugging Face cache like the diffusion engine's, so HF_HUB_OFFLINE is honoured and a
missing model fails with the command that fetches it. `options.kinds` says which control maps
the entry makes (the preprocess operation and control layers pick detectors by it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiedit.engines import downloads, hub_files
from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry
from aiedit.errors import OperationError

LOADERS = ("depth", "lineart")
FILES = ["config.json", "preprocessor_config.json", "*.safetensors"]  # a transformers repo


def requirements(entry: ModelEntry) -> dict[str, str]:
    """Python packages this engine needs, and the extra that installs them."""
    needed = {"torch": "ml", "transformers": "ml", "huggingface_hub": "ml"}
    if entry.source.get("loader") == "lineart":
        needed["controlnet_aux"] = "ml"
    return needed


def is_installed(entry: ModelEntry) -> bool:
    return hub_files.is_installed(entry, FILES)


def prepare(entry: ModelEntry, report: downloads.Report | None = None) -> None:
    hub_files.prepare(entry, FILES, report)


def download(entry: ModelEntry, report: downloads.Report | None = None) -> Path:
    return hub_files.download(entry, FILES, report)


def remove(entry: ModelEntry) -> int:
    return hub_files.remove(entry)


# --- loading and running ------------------------------------------------------------------------


@dataclass
class Detector:
    """A loaded detector: `run(rgb, params)` gives the control map (H x W x 3 uint8)."""

    entry: ModelEntry
    loader: str
    model: Any
    device: str

    def run(self, rgb, params: dict):
        import numpy as np
        from PIL import Image

        height, width = rgb.shape[:2]
        image = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
        if self.loader == "depth":
            depth = self.model(image)["depth"]  # normalised 0-255, near is bright
            out = np.asarray(depth.convert("L").resize((width, height), Image.Resampling.BILINEAR))
            return np.dstack([out] * 3)
        resolution = int(params.get("resolution") or 512)
        drawn = self.model(
            np.asarray(image),
            coarse=bool(params.get("coarse", False)),
            detect_resolution=resolution,
            image_resolution=resolution,
            output_type="np",
        )
        drawn = Image.fromarray(drawn).resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(drawn.convert("RGB"))


def load(entry: ModelEntry, device: str) -> LoadedModel:
    from aiedit.engines import devices

    prepare(entry)
    device = devices.resolve(device)
    loader = entry.source.get("loader")
    folder = str(hub_files.local_folder(entry))
    if loader == "depth":
        from transformers import pipeline

        model = pipeline("depth-estimation", model=folder, device=device)
    elif loader == "lineart":
        with warnings.catch_warnings():  # controlnet-aux imports timm's deprecated paths
            warnings.simplefilter("ignore")
            from controlnet_aux.lineart import LineartDetector

        model = LineartDetector.from_pretrained(folder).to(device)
    else:
        raise OperationError(
            "engine_unsupported",
            f"detector {entry.id}: unknown loader {loader!r} (known: {', '.join(LOADERS)})",
        )
    return LoadedModel(entry=entry, engine="detector", obj=Detector(entry, loader, model, device),
                       device=device)
