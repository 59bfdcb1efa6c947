"""Detector engine: networks that turn a picture into a control map (depth, line art, pose).

An entry's `source` names the hub repo, the files it needs and the loader that runs them:

    source = { repo = "depth-anything/Depth-Anything-V2-Small-hf", loader = "depth" }
    source = { repo = "lllyasviel/Annotators", loader = "lineart",
               files = ["sk_model.pth", "sk_model2.pth"] }

`depth` loads any transformers depth-estimation model (AutoModelForDepthEstimation through
transformers' `pipeline`); `lineart` loads controlnet-aux's line-art generator; `pose` loads a
transformers ViTPose model (COCO keypoints of the figure the image shows, drawn as an OpenPose
skeleton). Files resolve
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

LOADERS = ("depth", "lineart", "pose")
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
        if self.loader == "pose":
            return self._pose(image, float(params.get("threshold", 0.3)))
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


    def _pose(self, image, threshold: float):
        """Keypoints of the figure the image shows (the whole image is its box), drawn as an
        OpenPose skeleton (18 points, the neck between the shoulders) on black."""
        import cv2
        import numpy as np
        import torch

        processor, model = self.model
        width, height = image.size
        boxes = [[[0, 0, width, height]]]
        inputs = processor(image, boxes=boxes, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = model(**inputs)
        person = processor.post_process_pose_estimation(out, boxes=boxes)[0][0]
        coco = person["keypoints"].float().cpu().numpy()
        scores = person["scores"].float().cpu().numpy()
        points, seen = [], []
        for index in COCO_TO_OPENPOSE:
            if index is None:  # the neck: between the shoulders
                points.append((coco[5] + coco[6]) / 2)
                seen.append(min(scores[5], scores[6]) >= threshold)
            else:
                points.append(coco[index])
                seen.append(scores[index] >= threshold)
        canvas = np.zeros((height, width, 3), np.uint8)
        stick = max(1, round(max(width, height) / 128))
        for (a, b), colour in zip(OPENPOSE_LIMBS, OPENPOSE_COLOURS, strict=False):
            if seen[a] and seen[b]:
                start, end = (tuple(int(round(v)) for v in points[i]) for i in (a, b))
                cv2.line(canvas, start, end, [int(c * 0.6) for c in colour], stick * 2)
        for point, visible, colour in zip(points, seen, OPENPOSE_COLOURS, strict=True):
            if visible:
                cv2.circle(canvas, tuple(int(round(v)) for v in point), stick * 2, colour, -1)
        return canvas


# COCO's 17 keypoints in OpenPose's 18-point order (None: the neck, made from the shoulders)
COCO_TO_OPENPOSE = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
OPENPOSE_LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
                  (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
OPENPOSE_COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
                    (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
                    (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
                    (255, 0, 255), (255, 0, 170), (255, 0, 85))


def load(entry: ModelEntry, device: str) -> LoadedModel:
    from aiedit.engines import devices

    prepare(entry)
    device = devices.resolve(device)
    loader = entry.source.get("loader")
    folder = str(hub_files.local_folder(entry))
    if loader == "depth":
        from transformers import pipeline

        model = pipeline("depth-estimation", model=folder, device=device)
    elif loader == "pose":
        from transformers import AutoProcessor, VitPoseForPoseEstimation

        model = (AutoProcessor.from_pretrained(folder),
                 VitPoseForPoseEstimation.from_pretrained(folder).to(device).eval())
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
