"""The data directory: created private (0700, database 0600), and held by one server at a time."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from aiedit.config import DATABASE_FILE

LOCK_NAME = "aiedit.lock"


def prepare(data_dir: Path, database_url: str, blob_dir: Path) -> None:
    """Make the data directory private: the folder 0700 (when new, empty or already aiedit's: a
    folder holding other things is left as the user set it), the blob folder 0700 and a SQLite
    database file 0600 (SQLite gives its -wal and -shm files the database's mode)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    if _is_ours(data_dir):
        _tighten(data_dir, 0o700)  # mkdir's mode is filtered through the umask
    blob_dir.mkdir(mode=0o700, exist_ok=True)
    _tighten(blob_dir, 0o700)
    database = _sqlite_file(database_url)
    if database is not None:
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
        _tighten(database, 0o600)


def _is_ours(data_dir: Path) -> bool:
    names = {p.name for p in data_dir.iterdir()}
    return not names or bool(names & {LOCK_NAME, DATABASE_FILE, "blobs"})


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _tighten(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except OSError:
        pass  # not ours to change (another user's file): SQLite or the OS will say if it matters


class DataDirBusy(RuntimeError):
    pass


class DataDirLock:
    """An exclusive lock on `<data_dir>/aiedit.lock`, held while the server runs. The OS drops it
    when the process ends, however it ends, so a killed server leaves no stale lock."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirBusy(
                f"another aiedit server (pid {holder}) is using the data directory "
                f"{self.path.parent}; stop it first, or give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
