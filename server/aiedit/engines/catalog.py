"""The model catalog: the entries shipped in `catalog.toml`, extended by a user file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

ENGINES = ("classic", "controlnet", "detector", "diffusion", "ip_adapter", "lora", "spandrel")
# diffusers pipeline class name prefix -> the family of weights LoRAs and ControlNets must fit
FAMILIES = {"StableDiffusionXL": "sdxl", "Flux": "flux", "QwenImage": "qwen-image"}


@dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    operations: tuple[str, ...]
    engine: str
    source: dict[str, Any] = field(default_factory=dict)
    licence: str = ""
    non_commercial: bool = False
    download_size: int = 0
    memory: int = 0
    priority: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def is_classic(self) -> bool:
        return self.engine == "classic"

    def serves(self, operation: str) -> bool:
        return operation in self.operations

    @property
    def kinds(self) -> tuple[str, ...]:
        """The control maps a detector makes or a ControlNet follows (`options.kinds`)."""
        return tuple(self.options.get("kinds", ()))

    @property
    def family(self) -> str | None:
        """The base weights this model is or fits: `options.base`, or for a diffusion pipeline
        its class (sdxl, flux, qwen-image); None when unknown."""
        if "base" in self.options:
            return str(self.options["base"])
        pipeline = self.source.get("pipeline", "")
        return next((f for prefix, f in FAMILIES.items() if pipeline.startswith(prefix)), None)

    @property
    def revision(self) -> str | None:
        """The hub revision the entry is pinned to (`source.revision`: a commit hash, or a branch
        or tag such as "main"); None for entries that do not come from a hub repo."""
        return self.source.get("revision") if "repo" in self.source else None

    @property
    def licence_notice(self) -> str | None:
        """What a user must know before using a non-commercial model's results (the CLI prints it
        on pull, /v1/models shows it); None for other models."""
        if not self.non_commercial:
            return None
        return (
            f"{self.name} is licensed under the {self.licence}: non-commercial use only. Read "
            "the licence before using its results in paid or commercial work."
        )


class CatalogError(ValueError):
    pass


class Catalog:
    def __init__(self, entries: list[ModelEntry]):
        self._entries = {e.id: e for e in entries}

    @classmethod
    def load(cls, user_file: str | Path | None = None, lora_dir: str | Path | None = None
             ) -> Catalog:
        text = resources.files("aiedit").joinpath("catalog.toml").read_text("utf-8")
        entries = {e.id: e for e in _parse(tomllib.loads(text), "catalog.toml")}
        if user_file:
            path = Path(user_file).expanduser()
            with open(path, "rb") as fh:
                for entry in _parse(tomllib.load(fh), str(path)):
                    entries[entry.id] = entry
        if lora_dir:
            from aiedit.engines.lora import scan

            for entry in scan(lora_dir):
                entries[entry.id] = entry
        return cls(list(entries.values()))

    def get(self, model_id: str) -> ModelEntry | None:
        return self._entries.get(model_id)

    def __iter__(self):
        return iter(self._entries.values())

    def for_operation(self, operation: str) -> list[ModelEntry]:
        return [e for e in self._entries.values() if e.serves(operation)]


def _parse(doc: dict, origin: str) -> list[ModelEntry]:
    entries = []
    for raw in doc.get("model", []):
        try:
            entry = ModelEntry(
                id=raw["id"],
                name=raw.get("name", raw["id"]),
                operations=tuple(raw["operations"]),
                engine=raw["engine"],
                source=dict(raw.get("source", {})),
                licence=raw.get("licence", ""),
                non_commercial=bool(raw.get("non_commercial", False)),
                download_size=int(raw.get("download_size", 0)),
                memory=int(raw.get("memory", 0)),
                priority=int(raw.get("priority", 0)),
                defaults=dict(raw.get("defaults", {})),
                options=dict(raw.get("options", {})),
                description=raw.get("description", ""),
            )
        except KeyError as exc:
            raise CatalogError(f"{origin}: model entry lacks {exc.args[0]!r}: {raw}") from None
        if entry.engine not in ENGINES:
            raise CatalogError(f"{origin}: model {entry.id!r} has unknown engine {entry.engine!r}")
        if "repo" in entry.source and not str(entry.source.get("revision") or "").strip():
            raise CatalogError(
                f"{origin}: model {entry.id!r} comes from hub repo {entry.source['repo']!r} "
                "but pins no revision: add `revision` to its source (a commit hash, or \"main\" "
                "to follow the repo)"
            )
        entries.append(entry)
    return entries
