"""Wake long-polling requests when a job changes (within one process; other processes' changes
are seen by re-reading the database at a short interval, or, in studio mode, pushed through
Redis by `events_redis.RedisJobEvents`)."""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_PREVIEWS = 64  # jobs whose latest step preview is kept (in memory, never on disk)


def preview_png(pixels) -> bytes:
    """A step preview's pixels (H x W x 3 uint8) as the PNG that `/v1/jobs/{id}/preview` sends.
    Encoded when a client asks, not when the job makes the preview: a job nobody watches
    never pays for it, and one that is watched hands it to the request's thread."""
    import numpy as np

    from aiedit.imaging.codec import encode

    alpha = np.full(pixels.shape[:2] + (1,), 255, np.uint8)
    return encode(np.concatenate([pixels, alpha], axis=2))


class JobEvents:
    """Two counters per job: every change, and changes other than progress (state, results);
    and each job's latest step preview, where every process that serves the job can read it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._versions: dict[str, tuple[int, int]] = {}
        self._changes = 0  # changes other than progress, of any job
        # a job's latest preview: (step, pixels), or (step, PNG) once a client has asked
        self._previews: OrderedDict[str, tuple] = OrderedDict()
        self._previews_lock = threading.Lock()

    def put_preview(self, job_id: str, step: int, pixels) -> None:
        """Keep the pixels (H x W x 3 uint8, the job's own copy) of `step` as the job's latest
        preview (the last MAX_PREVIEWS jobs' only), to be encoded when asked for."""
        with self._previews_lock:
            self._previews.pop(job_id, None)
            self._previews[job_id] = (step, pixels)
            while len(self._previews) > MAX_PREVIEWS:
                self._previews.popitem(last=False)

    def preview(self, job_id: str) -> tuple[int, bytes] | None:
        """(step, PNG) of the job's latest preview, encoded now if nobody asked for it yet."""
        with self._previews_lock:
            found = self._previews.get(job_id)
        if found is None or isinstance(found[1], bytes):
            return found
        step, png = found[0], preview_png(found[1])  # outside the lock: the job goes on
        with self._previews_lock:
            if self._previews.get(job_id) is found:  # still the latest: keep the PNG
                self._previews[job_id] = (step, png)
        return step, png

    def preview_step(self, job_id: str) -> int | None:
        """The latest preview's step, without its picture (cheap to poll)."""
        with self._previews_lock:
            found = self._previews.get(job_id)
        return None if found is None else found[0]

    def drop_preview(self, job_id: str) -> None:
        with self._previews_lock:
            self._previews.pop(job_id, None)

    def notify(
        self, job_id: str, progress_only: bool = False, progress: dict | None = None
    ) -> None:
        """The job changed (`progress_only`: only its progress, which is `progress`)."""
        with self._cond:
            every, major = self._versions.get(job_id, (0, 0))
            self._versions[job_id] = (every + 1, major + (not progress_only))
            self._changes += not progress_only
            self._cond.notify_all()

    def changes(self) -> int:
        """A counter of the changes other than progress (a job queued, started, finished or
        canceled) this process has seen, of any job: what was read about the queue since it
        last moved is still current."""
        return self._changes

    def live(self, job_id: str) -> dict | None:
        """The latest progress another process pushed for this job (none in one process)."""
        return None

    def start(self) -> None:
        """Begin receiving other processes' changes (nothing to do within one process)."""

    def stop(self) -> None:
        pass

    def version(self, job_id: str) -> tuple[int, int]:
        with self._cond:
            return self._versions.get(job_id, (0, 0))

    def wait(self, job_id: str, since: tuple[int, int], timeout: float,
             progress_counts: bool = True) -> tuple[int, int]:
        """Block until the job changes after `since` (ignoring progress-only changes when
        `progress_counts` is false) or `timeout` passes; returns the new version."""
        index = 0 if progress_counts else 1

        def changed():
            return self._versions.get(job_id, (0, 0))[index] != since[index]

        with self._cond:
            self._cond.wait_for(changed, timeout)
            return self._versions.get(job_id, (0, 0))

    def forget(self, job_id: str) -> None:
        with self._cond:
            self._versions.pop(job_id, None)
