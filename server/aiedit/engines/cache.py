"""A memory-bounded, least-recently-used cache of loaded models, shared by a process's workers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiedit.engines.catalog import ModelEntry


@dataclass
class LoadedModel:
    """A model ready to run: what it is, which engine loaded it, and the engine's object."""

    entry: ModelEntry
    engine: str
    obj: Any
    device: str = "cpu"
    size_bytes: int = 0
    info: dict[str, Any] = field(default_factory=dict)


Loader = Callable[[ModelEntry, str], LoadedModel]


class ModelCache:
    """Keeps loaded models; evicts least recently used ones when `max_bytes` would be exceeded,
    or, with `free_memory(device)` given, when the device lacks room for the next model."""

    def __init__(self, loader: Loader, max_bytes: int = 0, on_evict: Callable | None = None,
                 free_memory: Callable[[str], int] | None = None):
        self._loader = loader
        self._max = max_bytes
        self._free_memory = free_memory
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._on_evict = on_evict
        self.loads = 0

    def get(self, entry: ModelEntry, device: str) -> LoadedModel:
        key = (entry.id, device)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one load per model even when two workers ask at once
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
                self._make_room(entry.memory, device)
            model = self._loader(entry, device)
            self.loads += 1
            with self._lock:
                self._models[key] = model
                self._make_room(0)
            return model

    def evict(self, model_id: str | None = None) -> None:
        """Drop one model (all devices) or, with no id, every model."""
        with self._lock:
            for key in [k for k in self._models if model_id in (None, k[0])]:
                self._drop(key)

    def held(self) -> list[tuple[str, str]]:
        """(model id, device as the workers name it) of every loaded model."""
        with self._lock:
            return list(self._models)

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def _used(self) -> int:
        return sum(m.size_bytes for m in self._models.values())

    def _make_room(self, incoming: int, device: str | None = None) -> None:
        while self._models and self._max and self._used() + incoming > self._max:
            self._drop(next(iter(self._models)))
        if device is None or not incoming or self._free_memory is None:
            return
        while self._models and self._free_memory(device) < incoming:
            self._drop(next(iter(self._models)))

    def _drop(self, key) -> None:
        model = self._models.pop(key)
        if self._on_evict:
            self._on_evict(model)
