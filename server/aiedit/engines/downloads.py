"""Model downloads: where hub repos live on disk (the Hugging Face cache), whether one is complete,
and a process-wide tracker of downloads in progress that `/v1/models` and waiting jobs read.

Nothing here imports torch; huggingface_hub is imported only when something is fetched."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

QUEUED, DOWNLOADING, DONE, FAILED = "queued", "downloading", "done", "failed"
Report = Callable[[int, int], None]  # (bytes_done, bytes_total)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class DownloadTracker:
    """Downloads in progress (and their last outcome), keyed by model id; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state: dict[str, dict] = {}

    def start(self, model_id: str, bytes_total: int = 0) -> None:
        with self._lock:
            self._state[model_id] = {
                "state": DOWNLOADING,
                "bytes_done": 0,
                "bytes_total": int(bytes_total),
                "updated": time.time(),
            }

    def update(self, model_id: str, bytes_done: int, bytes_total: int) -> None:
        with self._lock:
            row = self._state.setdefault(
                model_id, {"state": DOWNLOADING, "bytes_done": 0, "bytes_total": 0}
            )
            row["bytes_done"] = max(int(bytes_done), 0)
            row["bytes_total"] = max(int(bytes_total), row["bytes_done"])
            row["updated"] = time.time()

    def finish(self, model_id: str, ok: bool, message: str = "") -> None:
        with self._lock:
            row = self._state.setdefault(model_id, {"bytes_done": 0, "bytes_total": 0})
            row["state"] = DONE if ok else FAILED
            if ok:
                row["bytes_done"] = row["bytes_total"] = max(row["bytes_done"], row["bytes_total"])
            row["message"] = message
            row["updated"] = time.time()

    def track(self, model_id: str, bytes_total: int, fetch, report=None):
        """Run `fetch(progress)`, recording its progress here and passing it on to `report`;
        the outcome (done or failed, with the error) is recorded too."""
        self.start(model_id, bytes_total)

        def progress(done: int, total: int) -> None:
            self.update(model_id, done, total)
            if report is not None:
                report(done, total)

        try:
            result = fetch(progress)
        except Exception as exc:
            self.finish(model_id, ok=False, message=str(exc))
            raise
        self.finish(model_id, ok=True)
        return result

    def get(self, model_id: str) -> dict | None:
        with self._lock:
            row = self._state.get(model_id)
            return _public(row) if row else None

    def snapshot(self) -> dict[str, dict]:
        """{model_id: {state, bytes_done, bytes_total}} for every download this process saw."""
        with self._lock:
            return {model_id: _public(row) for model_id, row in self._state.items()}

    def reporter(self, model_id: str) -> Report:
        return lambda done, total: self.update(model_id, done, total)


def _public(row: dict) -> dict:
    return {
        "state": row.get("state", QUEUED),
        "bytes_done": row.get("bytes_done", 0),
        "bytes_total": row.get("bytes_total", 0),
    }


_TRACKER = DownloadTracker()


def tracker() -> DownloadTracker:
    """The process-wide tracker (engines report into it; Services exposes it)."""
    return _TRACKER


# --- the Hugging Face cache ---------------------------------------------------------------------


def hub_cache() -> Path:
    """The hub cache directory, honouring HF_HUB_CACHE / HF_HOME as set when called."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def repo_folder(repo_id: str) -> Path:
    return hub_cache() / ("models--" + repo_id.replace("/", "--"))


def snapshot_folder(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot of `repo_id` at `revision` (a branch, tag or commit), or None."""
    folder = repo_folder(repo_id)
    revision = revision or "main"
    commit = revision if _COMMIT.match(revision) else None
    if commit is None:
        ref = folder / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snapshot = folder / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def pipeline_complete(folder: Path | None) -> bool:
    """A diffusers pipeline folder with its model_index.json and every component folder."""
    if folder is None:
        return False
    index = folder / "model_index.json"
    if not index.is_file():
        return False
    try:
        components = json.loads(index.read_text())
    except (OSError, ValueError):
        return False
    for name, spec in components.items():
        if name.startswith("_") or not isinstance(spec, list) or None in spec:
            continue
        if not (folder / name).is_dir():
            return False
    return True


def make_tqdm(report: Report):
    """A tqdm class for huggingface_hub that feeds byte progress into `report`, showing nothing."""
    from tqdm.auto import tqdm

    class ReportingTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._bytes = kwargs.get("unit") == "B" and not str(kwargs.get("desc", "")).startswith(
                "Downloading bytes"
            )
            self._done = int(kwargs.get("initial", 0) or 0)

        def update(self, n=1):
            if self._bytes and n:
                self._done += int(n)
                report(self._done, int(self.total or 0))
            return super().update(n)

    return ReportingTqdm
