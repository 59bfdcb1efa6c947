"""Engines turn catalog entries into runnable models. Each engine module offers
`is_installed(entry) -> bool` (cheap, no torch import) and `load(entry, device) -> LoadedModel`;
engines with weights also offer `download(entry, report)` and `remove(entry)`."""

from __future__ import annotations

import functools
import importlib
import platform
import sys
from pathlib import Path
from types import ModuleType

from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry


def engine_module(name: str) -> ModuleType:
    return importlib.import_module(f"aiedit.engines.{name}")


def is_installed(entry: ModelEntry) -> bool:
    return engine_module(entry.engine).is_installed(entry)


def load(entry: ModelEntry, device: str) -> LoadedModel:
    return engine_module(entry.engine).load(entry, device)


def installed_for(catalog, operation: str) -> list[ModelEntry]:
    """Installed models serving `operation`, preferred first."""
    entries = [e for e in catalog.for_operation(operation) if is_installed(e)]
    gpu = accelerator_present()
    return sorted(entries, key=lambda e: (-rank(e, gpu), e.is_classic, e.id))


def rank(entry: ModelEntry, gpu: bool) -> int:
    """Preference among installed models: `options.gpu_priority` applies where a GPU is."""
    return int(entry.options.get("gpu_priority", entry.priority)) if gpu else entry.priority


@functools.cache
def accelerator_present() -> bool:
    """An NVIDIA driver or Apple silicon, detected without importing torch."""
    return Path("/proc/driver/nvidia/version").exists() or (
        sys.platform == "darwin" and platform.machine() == "arm64"
    )


def default_model(catalog, operation: str) -> ModelEntry | None:
    """The operation's default: its preferred installed model (classic when nothing else is)."""
    installed = installed_for(catalog, operation)
    return installed[0] if installed else None
