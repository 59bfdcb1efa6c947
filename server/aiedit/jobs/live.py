"""Live sessions: an editor sends frames (the canvas as it is being painted) and gets each one
re-rendered with the session's model and params, as fast as the model allows.

A frame is not a stored job: it runs as a transient task on the device's worker (ahead of queued
jobs, taking turns with them when jobs wait, see `EmbeddedQueue.run_task`), with its inputs and
result kept in memory. Per session at most one frame runs and at most one waits; a newer frame
replaces the waiting one, which is answered as superseded at once. A session ends when it is
deleted or after `LIVE_IDLE_S` without frames; a frame running then stops at its next step."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiedit.engines import engine_module
from aiedit.errors import Canceled, OperationError
from aiedit.logs import job_texts, private_text
from aiedit.ops.base import ImageOutput, OpContext, Progress, Region, registry

if TYPE_CHECKING:
    import numpy as np

    from aiedit.engines.catalog import ModelEntry
    from aiedit.jobs.runner import JobRunner

log = logging.getLogger(__name__)
LIVE_IDLE_S = 60.0  # a session without frames for this long is closed
SWEEP_EVERY_S = 2.0


class Superseded(Exception):
    """A newer frame for the same session arrived before this one started."""


class SessionClosed(Exception):
    """The session was deleted or expired before the frame finished."""


class FrameTimeout(Exception):
    """The frame waited too long for the device (it is busy with jobs); it was withdrawn."""


@dataclass
class Frame:
    params: dict  # loaded (validated) params, the session's with this frame's changes
    inputs: dict[str, np.ndarray]
    region: Region
    raw_params: dict | None = None  # the params as sent (JSON), for a worker in another process
    done: threading.Event = field(default_factory=threading.Event)
    output: ImageOutput | None = None
    error: Exception | None = None

    def finish(self, output: ImageOutput | None = None, error: Exception | None = None) -> None:
        self.output, self.error = output, error
        self.done.set()


@dataclass
class LiveSession:
    id: str
    owner: str
    operation: str
    entry: ModelEntry
    params: dict  # as sent (JSON), with the seed fixed at creation
    device: str
    last_frame: float = field(default_factory=time.monotonic)
    running: Frame | None = None
    waiting: Frame | None = None
    scheduled: bool = False
    closed: bool = False
    frames: int = 0


def describe_session(session) -> dict[str, Any]:
    """A session as the API answers it (a `LiveSession`, or studio's `RedisLiveSession`)."""
    return {
        "id": session.id,
        "operation": session.operation,
        "model": session.entry.id,
        "params": session.params,
        "idle_timeout_s": LIVE_IDLE_S,
        "frames_url": f"/v1/live/{session.id}/frames",
    }


class LiveSessions:
    """Every open live session of this process."""

    def __init__(self, runner: JobRunner, idle_s: float = LIVE_IDLE_S):
        self._runner = runner
        self._idle_s = idle_s
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    # --- sessions ---------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        queue = self._runner.queue
        return queue is not None and type(queue).run_task is not _base_run_task()

    def count(self, owner: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self._sessions.values() if owner is None or s.owner == owner)

    def open(self, owner: str, operation: str, entry: ModelEntry, params: dict) -> LiveSession:
        params = dict(params)
        if params.get("seed") is None:  # one seed for the session: unchanged input, same frame
            params["seed"] = random.randrange(2**32)
        session = LiveSession(
            id=uuid.uuid4().hex,
            owner=owner,
            operation=operation,
            entry=entry,
            params=params,
            device=self._runner.queue.pick_device(),
        )
        with self._lock:
            self._sessions[session.id] = session
            self._start_sweeper()
        self._runner.queue.run_task(session.device, lambda: self._warm(session))
        log.info("live session opened", extra={"session": session.id, "owner": owner,
                                               "operation": operation, "model": entry.id})
        return session

    def _warm(self, session: LiveSession) -> None:
        """On the device's worker: load the session's model now, so the first frame is fast (a
        failure shows on that frame instead)."""
        if session.closed:
            return
        try:
            self._runner.cache.get(session.entry, session.device)
        except Exception as exc:
            log.info("live session %s: model %s not loaded ahead (%s)", session.id,
                     session.entry.id, type(exc).__name__)

    def get(self, session_id: str) -> LiveSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def update_params(self, session: LiveSession, params: dict) -> None:
        """Later frames of the session keep a frame's changes (prompt, strength, ...)."""
        session.params = params

    def owned_by(self, owners) -> list[str]:
        """Ids of the open sessions of these owners."""
        with self._lock:
            return [sid for sid, s in self._sessions.items() if s.owner in set(owners)]

    def close(self, session_id: str, why: str = "deleted") -> bool:
        """End a session: its waiting frame is answered at once, its running frame stops at
        its next step."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return False
            session.closed = True
            waiting, session.waiting = session.waiting, None
        if waiting is not None:
            waiting.finish(error=SessionClosed(why))
        log.info("live session closed", extra={"session": session_id, "why": why,
                                               "frames": session.frames})
        return True

    def close_all(self) -> None:
        self._stop.set()
        for session_id in list(self._sessions):
            self.close(session_id, "server stopping")

    def running(self) -> int:
        """Frames running or waiting in all sessions (for tests and the admin view)."""
        with self._lock:
            return sum((s.running is not None) + (s.waiting is not None)
                       for s in self._sessions.values())

    # --- frames -----------------------------------------------------------------------------

    def submit(self, session: LiveSession, frame: Frame, timeout: float) -> ImageOutput:
        """Run `frame` in `session` and return its image; raises Superseded, SessionClosed or
        the operation's own OperationError."""
        schedule = False
        with self._lock:
            if session.closed:
                raise SessionClosed("deleted")
            session.last_frame = time.monotonic()
            replaced, session.waiting = session.waiting, frame
            if session.running is None and not session.scheduled:
                session.scheduled = schedule = True
        if replaced is not None:
            replaced.finish(error=Superseded())
        if schedule and not self._runner.queue.run_task(
            session.device, lambda: self._run_next(session)
        ):
            with self._lock:
                session.scheduled = False
            raise SessionClosed("server stopping")
        if not frame.done.wait(timeout):
            with self._lock:
                if session.waiting is frame:  # still waiting: withdraw it
                    session.waiting = None
                    raise FrameTimeout()
            frame.done.wait()  # it started meanwhile: it stops soon or finishes
        if frame.error is not None:
            raise frame.error
        return frame.output

    def _run_next(self, session: LiveSession) -> None:
        """On the device's worker: run the session's waiting frame."""
        with self._lock:
            session.scheduled = False
            frame, session.waiting = session.waiting, None
            if frame is None or session.closed:
                return
            session.running = frame
        try:
            frame.finish(output=render_frame(
                self._runner, session.operation, session.entry, session.device, frame.params,
                frame.inputs, frame.region, lambda: session.closed, f"live session {session.id}",
            ))
        except Exception as exc:
            frame.finish(error=exc)
        finally:
            again = False
            with self._lock:
                session.running = None
                session.frames += 1
                session.last_frame = time.monotonic()
                if session.waiting is not None and not session.closed:
                    session.scheduled = again = True
            if again and not self._runner.queue.run_task(
                session.device, lambda: self._run_next(session)
            ):
                self.close(session.id, "server stopping")

    # --- expiry -----------------------------------------------------------------------------

    def _start_sweeper(self) -> None:
        if self._sweeper is None or not self._sweeper.is_alive():
            self._sweeper = threading.Thread(target=self._sweep, daemon=True,
                                             name="aiedit-live-sweeper")
            self._sweeper.start()

    def _sweep(self) -> None:
        while not self._stop.wait(min(SWEEP_EVERY_S, self._idle_s / 4)):
            self.expire()

    def expire(self) -> int:
        """Close sessions idle for longer than the limit (a frame running keeps one open)."""
        now = time.monotonic()
        with self._lock:
            idle = [s.id for s in self._sessions.values()
                    if s.running is None and s.waiting is None
                    and now - s.last_frame > self._idle_s]
        for session_id in idle:
            self.close(session_id, "expired")
        return len(idle)


def _base_run_task():
    from aiedit.jobs.queue_base import JobQueue

    return JobQueue.run_task


def render_frame(runner: JobRunner, operation: str, entry: ModelEntry, device: str, params: dict,
                 inputs: dict[str, np.ndarray], region: Region, closed, what: str
                 ) -> ImageOutput:
    """Render one live frame on this process's worker with its warm model (`params` loaded by
    the operation's schema). `closed()` is asked at every step: true stops the frame. Raises
    SessionClosed when it stopped so, else OperationError (the operation's own, or
    out_of_memory / internal_error for what went wrong underneath)."""
    try:
        with private_text(*job_texts(params)):
            return _render(runner, operation, entry, device, params, inputs, region, closed)
    except Canceled:
        raise SessionClosed("deleted") from None
    except OperationError:
        raise
    except MemoryError:
        raise OperationError(
            "out_of_memory", "the server ran out of memory; try a smaller region") from None
    except Exception:
        with private_text(*job_texts(params)):
            log.exception("%s: a frame failed", what)
        raise OperationError(
            "internal_error",
            f"the frame failed unexpectedly ({what}); the server log has the details",
        ) from None


def _render(runner: JobRunner, operation: str, entry: ModelEntry, device: str, params: dict,
            inputs: dict[str, np.ndarray], region: Region, closed) -> ImageOutput:
    op = registry()[operation]
    prepare = getattr(engine_module(entry.engine), "prepare", None)
    if prepare is not None:
        prepare(entry)
    model = runner.cache.get(entry, device)
    params = dict(params)
    for key, value in entry.defaults.items():
        if params.get(key) is None:
            params[key] = value
    progress = Progress(lambda *a: None, closed)
    ctx = OpContext(
        params=params,
        inputs=inputs,
        region=region,
        model=model,
        progress=progress,
        device=model.device,
        load=lambda model_id: runner._load_extra(model_id, device, progress),
        catalog=runner.catalog,
    )
    outputs = op.run(ctx)
    return outputs[0]
