"""`aiedit worker --device D`: a Celery worker (studio mode) that runs one job at a time on one
device. It registers itself in the `workers` table, beats there every few seconds with the
models it holds, and claims jobs through the runner when a ticket arrives."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiedit.jobs.fair import fair_order, for_device
from aiedit.jobs.queue_celery import LIVE_TASK, SHARED_QUEUE, TASK, CeleryQueue, worker_queue
from aiedit.services import Services
from aiedit.store.db import utcnow
from aiedit.store.models import Worker

log = logging.getLogger(__name__)
STUCK_AFTER_BEATS = 4  # idle while tickets wait this many beats: the consumer is stuck
_current: StudioWorker | None = None  # the worker this process runs (Celery calls `_work`)


class DeviceBusy(RuntimeError):
    """Another worker on this machine already runs on the device."""


def claim_device(device: str) -> int | None:
    """One worker per accelerator on a machine: two would each load their models into the
    same GPU's memory and run out of it. Holds an exclusive lock (a file in the temp folder,
    released by the system when the process ends, even on SIGKILL) and returns its descriptor;
    raises DeviceBusy if another process holds it. CPU workers share the CPU freely."""
    import fcntl

    if device == "cpu":
        return None
    name = device if ":" in device or device == "mps" else f"{device}:0"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", name)
    path = Path(tempfile.gettempdir()) / f"aiedit-worker-{safe}.lock"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DeviceBusy(
            f"another aiedit worker on this machine already runs on {name} (lock {path}); "
            "give each worker a device of its own (--device cuda:1, ...) or stop that one"
        ) from None
    return fd


def _work(job_id: str | None = None, cpu_only: bool = False) -> None:
    if _current is None:
        raise RuntimeError("aiedit.work ran outside `aiedit worker`")
    _current.work_once(job_id, cpu_only)


def _live(session_id: str, warm: bool = False) -> None:
    if _current is None:
        raise RuntimeError("aiedit.live ran outside `aiedit worker`")
    _current.live_once(session_id, warm)


class StudioWorker:
    def __init__(self, services: Services, device: str, name: str | None = None):
        if not isinstance(services.queue, CeleryQueue):
            raise RuntimeError("`aiedit worker` needs studio mode (AIEDIT_MODE=studio)")
        self.services = services
        self.queue: CeleryQueue = services.queue
        self.device = device
        raw = name or f"{socket.gethostname()}-{os.getpid()}-{device}"
        self.id = re.sub(r"[^A-Za-z0-9_.:-]", "-", raw)[:128]
        self.own_queue = worker_queue(self.id)
        self._busy = threading.Event()
        self._stopping = threading.Event()
        services.runner.worker_id = self.id
        services.runner.device = device

    # --- heartbeat --------------------------------------------------------------------------

    def _models(self) -> list[str]:
        return sorted({m.entry.id for m in self.services.cache.loaded()})

    def _beat(self, job: str | None = None, busy: bool | None = None) -> None:
        now = utcnow()
        with self.services.db.session() as s:
            row = s.get(Worker, self.id)
            if row is None:
                row = Worker(id=self.id, device=self.device, started_at=now, models=[])
                s.add(row)
            row.heartbeat_at = now
            row.models = self._models()
            if busy is not None:
                row.job = job if busy else None

    def _heartbeat_loop(self) -> None:
        interval = self.services.config.heartbeat_s
        stuck_since = None
        while not self._stopping.wait(interval):
            try:
                self._beat()
                if self._busy.is_set() or not self._tickets_waiting():
                    stuck_since = None
                    if not self._busy.is_set():
                        self._ask_for_work()
                    continue
                stuck_since = stuck_since or time.monotonic()
                if time.monotonic() - stuck_since > max(5.0, STUCK_AFTER_BEATS * interval):
                    self._restart()
            except Exception as exc:  # the database or Redis is away: beat again next time
                log.warning("worker %s: heartbeat failed (%s)", self.id, exc)

    def _tickets_waiting(self) -> bool:
        pending = self.queue.pending_tickets
        return bool(pending(self.own_queue) or pending(SHARED_QUEUE))

    def _ask_for_work(self) -> None:
        """An idle worker with jobs waiting and no ticket in sight sends itself one (tickets
        can be lost when Redis restarts without persistence)."""
        if not self._queued_order():
            return
        log.info("worker %s: jobs are waiting without a ticket; taking one", self.id)
        self.queue.send_ticket(self.own_queue)

    def _restart(self) -> None:
        """Celery's consumer does not always resume after the broker restarts (it stays
        connected to nothing while tickets wait). Idle, this worker holds no job, so it starts
        afresh in the same process (same pid, same name)."""
        if self._busy.is_set():
            return
        log.warning("worker %s: tickets are waiting but none arrives (the broker connection "
                    "did not recover); restarting the worker", self.id)
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "aiedit.cli", *sys.argv[1:]])

    # --- work -------------------------------------------------------------------------------

    def work_once(self, hint: str | None = None, cpu_only: bool = False) -> None:
        """One ticket: run the job that should start next, if any. `hint`, the job the ticket
        was sent for, is claimed at once if it is the only one queued and this worker may take
        it (a CPU worker takes only classic jobs that way; see `fair.for_device`)."""
        self._busy.set()
        job_id = None
        if hint is not None and self.device == "cpu" and not cpu_only:
            hint = None
        try:
            job_id = self.services.runner.run_next(self._queued_order, on_start=self._started,
                                                   alone=hint)
            if job_id:
                log.info("worker %s: job %s done", self.id, job_id)
        finally:
            self._busy.clear()
            try:
                self._beat(busy=False)
            except Exception:
                log.exception("worker %s: could not report itself idle", self.id)
        if job_id:
            self._keep_busy()

    def live_once(self, session_id: str, warm: bool = False) -> None:
        """One live ticket: render the session's waiting frame (or load its model ahead)."""
        live = self.services.live
        if live is None:
            return
        self._busy.set()
        try:
            live.work(session_id, self.device, self.own_queue, warm=warm)
        finally:
            self._busy.clear()

    def _keep_busy(self) -> None:
        """After a job: if jobs wait but no ticket will reach this worker (their tickets went to
        another worker's own queue, for the model it holds, and that worker is busy), take one
        now rather than idle until the next heartbeat. A spare ticket costs one look at the
        queue."""
        try:
            if not self._tickets_waiting():
                self._ask_for_work()
        except Exception as exc:  # the heartbeat asks again
            log.warning("worker %s: could not look for waiting jobs (%s)", self.id, exc)

    def _queued_order(self) -> list[str]:
        """The queued jobs this worker may take, in fair order (see `fair.for_device`)."""
        runner = self.services.runner
        queued = runner.queued_jobs()
        order = fair_order(queued, {owner: served for _, owner, _, _, served in queued})

        def live() -> list[str]:
            return [w.device for w in self.queue.workers() if w.name != self.id]

        return for_device(order, queued, self.device, live, runner.cpu_only)

    def _started(self, job_id: str) -> None:
        try:
            self._beat(job=job_id, busy=True)
        except Exception as exc:  # the next heartbeat reports it
            log.warning("worker %s: could not report job %s (%s)", self.id, job_id, exc)

    def run(self, loglevel: str = "INFO") -> None:
        """Register, beat, and consume tickets until stopped (SIGTERM: after the current job)."""
        global _current
        _current = self
        celery = self.queue.celery
        celery.task(name=TASK, ignore_result=True)(_work)
        celery.task(name=LIVE_TASK, ignore_result=True)(_live)
        self._beat(busy=False)
        self.services.start()
        threading.Thread(target=self._heartbeat_loop, daemon=True, name="aiedit-heartbeat").start()
        log.info("worker %s on %s: consuming %s and %s", self.id, self.device, SHARED_QUEUE,
                 self.own_queue)
        if logging.getLevelName(loglevel) != logging.DEBUG:
            # Celery's own line per ticket received and per ticket done repeats "job started"
            # and "job succeeded" (which carry the job id): they cost the start of every job a
            # log record; failures still come through (warnings and errors)
            for name in ("celery.worker.strategy", "celery.app.trace"):
                logging.getLogger(name).setLevel(logging.WARNING)
        try:
            celery.worker_main([
                # --quiet: no banner, the log stays one record a line (JSON in studio mode)
                "--quiet", "worker", "--pool=solo", "--concurrency=1", "--prefetch-multiplier=1",
                "-Q", f"{SHARED_QUEUE},{self.own_queue}", "-n", f"{self.id}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                f"--loglevel={loglevel}",
            ])
        finally:
            self._stopping.set()
            try:
                with self.services.db.session() as s:
                    row = s.get(Worker, self.id)
                    if row is not None:
                        s.delete(row)
            except Exception:
                log.exception("worker %s: could not unregister", self.id)
            self.services.stop()
            _current = None
