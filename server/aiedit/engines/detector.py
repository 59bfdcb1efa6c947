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

from aiedit.engines import downloads
from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry
from aiedit.errors import OperationError

LOADERS = ("depth", "lineart")
TRANSFORMERS_FILES = ["config.json", "preprocessor_config.json", "*.safetensors"]


def _files(entry: ModelEntry) -> list[str]:
    return list(entry.source.get("files") or TRANSFORMERS_FILES)


def local_folder(entry: ModelEntry) -> Path | None:
    source = entry.source
    if "path" in source:
        folder = Path(source["path"]).expanduser()
        return folder if folder.is_dir() else None
    return downloads.snapshot_folder(source["repo"], source.get("revision"))


def is_installed(entry: ModelEntry) -> bool:
    folder = local_folder(entry)
    return folder is not None and all(any(folder.glob(pattern)) for pattern in _files(entry))


def pull_command(entry: ModelEntry) -> str:
    return f"aiedit models pull {entry.id}"


def prepare(entry: ModelEntry, report: downloads.Report | None = None) -> None:
    """Make sure the weights are on disk: download them (online) or fail with how to get them."""
    if is_installed(entry):
        return
    if "path" in entry.source or downloads.hub_offline():
        raise OperationError(
            "model_not_available",
            f"detector {entry.id} is not downloaded and this server cannot fetch it "
            f"{'(HF_HUB_OFFLINE=1)' if downloads.hub_offline() else ''}. Get it with "
            f"`{pull_command(entry)}` ({entry.download_size / 1e6:.0f} MB).",
        )
    try:
        downloads.tracker().track(entry.id, entry.download_size,
                                  lambda progress: download(entry, progress), report)
    except Exception as exc:
        raise OperationError(
            "model_not_available",
            f"downloading detector {entry.id} failed: {exc}. Retry with `{pull_command(entry)}`.",
        ) from exc


def download(entry: ModelEntry, report: downloads.Report | None = None) -> Path:
    """Fetch the entry's files into the HF cache."""
    if "path" in entry.source:
        folder = local_folder(entry)
        if folder is None:
            raise FileNotFoundError(f"{entry.source['path']} does not exist")
        return folder
    if downloads.hub_offline():
        raise RuntimeError("HF_HUB_OFFLINE is set, so the hub cannot be reached; unset it")
    from huggingface_hub import snapshot_download

    report = report or (lambda done, total: None)
    report(0, entry.download_size)
    snapshot_download(
        entry.source["repo"],
        revision=entry.source.get("revision", "main"),
        cache_dir=str(downloads.hub_cache()),
        allow_patterns=_files(entry),
        tqdm_class=downloads.make_tqdm(lambda done, _t: report(done, entry.download_size)),
    )
    report(entry.download_size, entry.download_size)
    return local_folder(entry)


def remove(entry: ModelEntry) -> int:
    from aiedit.engines import diffusion

    return diffusion.remove(entry)


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
    folder = str(local_folder(entry))
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
