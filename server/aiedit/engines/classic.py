"""Classic engine: algorithms with no weights (Lanczos, OpenCV inpainting and denoising, Canny
edges and scribbles)."""

from __future__ import annotations

from dataclasses import dataclass

from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry

METHODS = ("lanczos", "telea", "navier-stokes", "nl-means", "canny", "scribble")


@dataclass(frozen=True)
class ClassicMethod:
    name: str


def is_installed(entry: ModelEntry) -> bool:
    return entry.source.get("method") in METHODS


def load(entry: ModelEntry, device: str) -> LoadedModel:
    method = entry.source.get("method")
    if method not in METHODS:
        raise ValueError(f"model {entry.id}: unknown classic method {method!r}")
    return LoadedModel(entry=entry, engine="classic", obj=ClassicMethod(method), device="cpu")
