"""Model downloads: where hub repos live on disk (the Hugging Face cache), whether one is complete,
and a process-wide tracker of downloads in progress that `/v1/models` and waiting jobs read.

Nothing here imports torch; huggingface_hub is imported only when something is fetched."""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
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


# --- one download per model -------------------------------------------------------------------

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()
LOCK_POLL_S = 0.25


def fetch_once(entry, installed: Callable[[], bool], fetch: Callable[[Report], object],
               report: Report | None = None, folder: Path | None = None) -> None:
    """Download `entry` once across jobs, pulls and processes (its lock file lives in `folder`,
    default the HF cache): while another holds the lock, relay that download's progress to
    `report`; then `fetch(progress)` unless the weights arrived meanwhile."""
    downloads = tracker()

    def waiting() -> None:
        row = downloads.get(entry.id) or {"bytes_done": 0, "bytes_total": entry.download_size}
        if report is not None:
            report(row["bytes_done"], row["bytes_total"])

    with model_lock(entry.id, folder or hub_cache(), waiting):
        if installed():
            return
        downloads.track(entry.id, entry.download_size, fetch, report)


@contextlib.contextmanager
def model_lock(model_id: str, folder: Path, waiting: Callable[[], None] | None = None):
    """Hold the download lock of `model_id`: one thread in this process and one process on this
    machine (a lock file in `folder/.locks`) at a time, so two jobs, or a job and
    `aiedit models pull`, fetch a model once. `waiting()` is called while another holds it."""
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(model_id, threading.Lock())
    while not lock.acquire(blocking=False):
        if waiting is not None:
            waiting()
        if lock.acquire(timeout=LOCK_POLL_S):
            break
    try:
        folder = Path(folder) / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", model_id)
        with open(folder / f"{safe}.lock", "a+b") as fh:
            _lock_file(fh, waiting)
            try:
                yield
            finally:
                _unlock_file(fh)
    finally:
        lock.release()


def _lock_file(fh, waiting) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: the in-process lock is all there is
        return
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if waiting is not None:
                waiting()
            time.sleep(LOCK_POLL_S)


def _unlock_file(fh) -> None:
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(fh, fcntl.LOCK_UN)


# --- the Hugging Face cache ---------------------------------------------------------------------


def hub_cache() -> Path:
    """The hub cache directory as huggingface_hub computes it (HF_HUB_CACHE, else HF_HOME/hub,
    else $XDG_CACHE_HOME/huggingface/hub), read when called. Works without huggingface_hub
    installed (a base install lists catalog models as not installed)."""
    env = os.environ
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return Path(env[name]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    cache = env.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "huggingface" / "hub"


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
    """A diffusers pipeline folder that is all there: its model_index.json, every component
    folder, and, in each component that is a model (it has a config.json), complete safetensors
    weights. A download cut off half-way (configs fetched, weights not yet) does not count."""
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
        component = folder / name
        if not component.is_dir():
            return False
        if (component / "config.json").is_file() and not weights_complete(component):
            return False
    return True


def weights_complete(component: Path) -> bool:
    """The component folder holds a whole set of safetensors weights (of any variant): a single
    file whose header matches its size, or a sharded index whose shards are all present."""
    sharded: set[str] = set()  # a shard alone is a valid file but not a whole set
    for index in component.glob("*.safetensors.index*.json"):
        try:
            names = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        if names and all(safetensors_problem(component / n) is None for n in names):
            return True
        sharded |= names
    return any(
        safetensors_problem(f) is None
        for f in component.glob("*.safetensors")
        if f.name not in sharded
    )


_checked: dict[tuple, str | None] = {}


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file (missing, truncated, corrupt header), or None.
    Reads only the header; results are remembered per (file, size, mtime)."""
    try:
        stat = path.stat()  # follows the cache's symlink to its blob
    except OSError:
        return "missing"
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _checked:
        _checked[key] = _read_safetensors_header(path, stat.st_size)
    return _checked[key]


def _read_safetensors_header(path: Path, size: int) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "truncated (no header)"
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                return "truncated (header runs past the end)"
            header = json.loads(fh.read(length))
        end = max(
            (t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "corrupt header"
    if 8 + length + end != size:
        return f"truncated or padded: {size} bytes on disk, {8 + length + end} expected"
    return None


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
