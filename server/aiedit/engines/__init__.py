"""Engines turn catalog entries into runnable models. Each engine module offers
`is_installed(entry) -> bool` (cheap, no torch import) and `load(entry, device) -> LoadedModel`;
engines with weights also offer `download(entry, report)` and `remove(entry)`, and
`requirements(entry) -> {module: extra}` names the Python packages they need (a base install
without extras has none of them)."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import platform
import sys
from pathlib import Path
from types import ModuleType

from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry


def engine_module(name: str) -> ModuleType:
    return importlib.import_module(f"aiedit.engines.{name}")


def is_installed(entry: ModelEntry) -> bool:
    """The entry can run here now: its packages are installed and its weights are on disk."""
    return unavailable_reason(entry) is None and engine_module(entry.engine).is_installed(entry)


def unavailable_reason(entry: ModelEntry) -> str | None:
    """Why this installation cannot run `entry` at all (Python packages missing), naming the
    extra that brings them; None when it can."""
    requirements = getattr(engine_module(entry.engine), "requirements", None)
    needed = requirements(entry) if requirements else {}
    missing = [module for module in needed if not _importable(module)]
    if not missing:
        return None
    extras = ",".join(sorted({needed[m] for m in missing}))
    return (
        f"this server lacks the Python packages {', '.join(missing)} that model {entry.id} "
        f"needs; install them with `pip install 'aiedit[{extras}]'` and restart the server"
    )


@functools.cache
def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
