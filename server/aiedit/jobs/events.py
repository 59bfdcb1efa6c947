"""Wake long-polling requests when a job changes (within one process; other processes' changes
are seen by re-reading the database at a short interval)."""

from __future__ import annotations

import threading


class JobEvents:
    def __init__(self):
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}

    def notify(self, job_id: str) -> None:
        with self._cond:
            self._versions[job_id] = self._versions.get(job_id, 0) + 1
            self._cond.notify_all()

    def version(self, job_id: str) -> int:
        with self._cond:
            return self._versions.get(job_id, 0)

    def wait(self, job_id: str, since: int, timeout: float) -> int:
        """Block until the job's version passes `since` or `timeout` passes; returns the version."""
        with self._cond:
            self._cond.wait_for(lambda: self._versions.get(job_id, 0) != since, timeout)
            return self._versions.get(job_id, 0)

    def forget(self, job_id: str) -> None:
        with self._cond:
            self._versions.pop(job_id, None)
