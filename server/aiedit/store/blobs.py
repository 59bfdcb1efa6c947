"""Files of jobs (inputs and results) under one directory per job."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / job_id

    def path(self, job_id: str, name: str) -> Path:
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or ".." in name:
            raise ValueError(f"bad blob name {name!r}")
        return self.job_dir(job_id) / name

    def put_array(self, job_id: str, name: str, array: np.ndarray, durable: bool = False) -> str:
        """Store pixels uncompressed (fast to write and to map back); returns the blob name.
        `durable`: on disk (fsync) before the name appears."""
        blob = f"{name}.npy"
        self._write(job_id, blob, lambda fh: np.save(fh, np.ascontiguousarray(array)), durable)
        return blob

    def get_array(self, job_id: str, blob: str) -> np.ndarray:
        return np.load(self.path(job_id, blob), mmap_mode="r")

    def put_bytes(self, job_id: str, name: str, data, durable: bool = False) -> str:
        """Store bytes (or any buffer) as they are; returns the blob name."""
        self._write(job_id, name, lambda fh: fh.write(data), durable)
        return name

    def sync(self, job_id: str, names) -> None:
        """Make files written without `durable` durable, their names too (one folder sync)."""
        for name in names:
            fd = os.open(self.path(job_id, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(self.job_dir(job_id))

    def size(self, job_id: str, name: str) -> int | None:
        """A blob's size in bytes, or None when it is missing."""
        try:
            return self.path(job_id, name).stat().st_size
        except FileNotFoundError:
            return None

    def put_stream(self, job_id: str, name: str, source, size: int, chunk: int = 1 << 22) -> str:
        """Store `size` bytes read from the binary stream `source` as they arrive (one chunk
        buffer, reused: no copy of the whole file in memory); returns the blob name. Raises
        EOFError, leaving nothing behind, when the stream ends early. Not synced: see `sync`."""

        def write(fh):
            view = memoryview(bytearray(min(chunk, size) or 1))
            left = size
            while left:
                got = source.readinto(view[: min(len(view), left)])
                if not got:
                    raise EOFError(f"the stream ended {left} bytes early")
                fh.write(view[:got])
                left -= got

        self._write(job_id, name, write)
        return name

    def get_bytes(self, job_id: str, blob: str) -> bytes:
        return self.path(job_id, blob).read_bytes()

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def delete_results(self, job_id: str) -> None:
        for path in self.job_dir(job_id).glob("result-*"):
            path.unlink(missing_ok=True)

    def job_ids(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir() and p.name.isalnum()]

    def age_s(self, job_id: str) -> float:
        """Seconds since anything in the job's folder last changed (0 if it is gone)."""
        folder = self.job_dir(job_id)
        try:
            changed = max(
                [folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.iterdir())]
            )
        except FileNotFoundError:
            return 0.0
        return max(0.0, time.time() - changed)

    def _write(self, job_id: str, name: str, write, durable: bool = False) -> None:
        target = self.path(job_id, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
            if durable:
                _fsync_dir(target.parent)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            if exc.errno is None:  # numpy reports a short write without errno: the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from exc
            raise
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
