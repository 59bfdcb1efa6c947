"""The one place a job changes state: submitted (queued), started, progressed, finished, canceled,
recovered after a crash, deleted. Every queue implementation calls `JobRunner.run`.

Every state change is a conditional update (`UPDATE jobs SET state = new WHERE id = ? AND
state = expected`), so a cancel and a finish that race (two threads, or two processes on
PostgreSQL) cannot overwrite each other: whichever commits second changes nothing."""

from __future__ import annotations

import errno
import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, String, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from aiedit.billing import ledger
from aiedit.engines import engine_module
from aiedit.jobs import stats
from aiedit.jobs.queue_base import CPU_DEVICE
from aiedit.logs import job_context, job_texts, private_text
from aiedit.ops.base import (
    Canceled,
    ImageOutput,
    OpContext,
    OperationError,
    Progress,
    Region,
    VideoOutput,
    registry,
)
from aiedit.store.db import Database, as_utc, utcnow
from aiedit.store.models import Job, Worker

if TYPE_CHECKING:
    import numpy as np

    from aiedit.engines.cache import LoadedModel, ModelCache
    from aiedit.engines.catalog import Catalog
    from aiedit.jobs.events import JobEvents
    from aiedit.jobs.queue_base import JobQueue
    from aiedit.store.blobs import BlobStore

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
)
FINISHED = (SUCCEEDED, FAILED, CANCELED)
MAX_ATTEMPTS = 2  # a job cut off by a crash is run once more, then fails as interrupted
PROGRESS_WRITE_INTERVAL_S = 0.5  # to the database; this process serves live progress from memory
CANCEL_POLL_INTERVAL_S = 1.0
ORPHAN_MIN_AGE_S = 600.0  # a job folder without a row is left alone this long (a submission
# writes its files before its row)


@dataclass
class InputFile:
    """An uploaded file as it was sent: `kind` is "raw" (pixels in `format`: rgba8, rgba16 or
    gray8) or the encoded format's extension (png, jpg, ...), then `format` is what it decodes
    to. It is stored as is and decoded when the job runs, so a small file that decodes to a
    large image stays small on disk."""

    data: bytes | bytearray | memoryview
    kind: str
    width: int
    height: int
    channels: int = 4
    format: str = ""
    stored: str | None = None  # already on disk, durably, as this blob of the job (raw bodies)
    stored_size: int = 0

    def __post_init__(self):
        if not self.format:
            self.format = "rgba8" if self.channels == 4 else "gray8"

    @property
    def size(self) -> int:
        return self.stored_size if self.stored else len(self.data)

    @property
    def blob_suffix(self) -> str:
        return self.format if self.kind == "raw" else self.kind


@dataclass
class NewJob:
    """A validated request, ready to store."""

    owner: str
    operation: str
    model: str
    params: dict
    region: Region
    inputs: dict[str, InputFile] = field(default_factory=dict)
    cost: float = 0.0
    idempotency_key: str | None = None
    request_hash: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # known to `admit` (credit holds)


class JobRunner:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        catalog: Catalog,
        cache: ModelCache,
        events: JobEvents,
        retention: timedelta,
        log_params: bool = False,
        job_timeout_s: float = 0.0,
        clock: Callable[[], datetime] = utcnow,
        expire_queued: bool = False,
    ):
        self.db = db
        self.now = clock  # what time it is (UTC); tests pass a clock they move
        self.expire_queued = expire_queued
        self.blobs = blobs
        self.catalog = catalog
        self.cache = cache
        self.events = events
        self.retention = retention
        self.log_params = log_params  # debug: prompts in the log (setting log_prompts)
        self.job_timeout_s = job_timeout_s
        self.queue: JobQueue | None = None
        self._live: dict[str, dict] = {}
        self.worker_id: str | None = None  # studio: this process's worker (jobs it claims)
        self.device: str | None = None  # studio: the device this worker runs jobs on

    def live_progress(self, job_id: str) -> dict | None:
        """The latest progress of a running job: from this process, or pushed by the worker
        that runs it (both fresher than the database)."""
        return self._live.get(job_id) or self.events.live(job_id)

    def preview(self, job_id: str) -> tuple[int, bytes] | None:
        """(step, PNG) of the latest step preview of a job, or None: kept by the job events
        (in memory in one process, in Redis in studio mode; never on disk)."""
        return self.events.preview(job_id)

    def preview_step(self, job_id: str) -> int | None:
        return self.events.preview_step(job_id)

    def report_preview(self, job_id: str, step: int, pixels: np.ndarray) -> None:
        """A new step preview (H x W x 3 uint8): kept as pixels, encoded when a client asks."""
        import numpy as np

        self.events.put_preview(job_id, step, np.array(pixels[..., :3], np.uint8))
        self.events.notify(job_id, progress_only=True)

    # --- submission -------------------------------------------------------------------------

    def find_idempotent(self, owner: str, key: str) -> Job | None:
        with self.db.session() as s:
            return s.scalar(select(Job).where(Job.owner == owner, Job.idempotency_key == key))

    def submit(self, new: NewJob, admit: Callable[[Session], None] | None = None) -> Job:
        """Store inputs and the row, then queue it. Nothing is left behind if any step fails.

        `admit(session)` runs first in the transaction that inserts the row: it may serialize
        that transaction (`Database.serialize`) and count, and raise to refuse the job, so
        concurrent submissions cannot all pass a limit that only one of them fits under."""
        job_id = new.id
        cpu_only = self.cpu_only(new.model, new.operation, new.params)
        device = CPU_DEVICE if cpu_only else self.queue.pick_device()
        try:
            # The files go to disk (fsync) after the job is queued, while it starts, and before
            # it is acknowledged: an acknowledged job keeps its inputs on a crash, and a crash
            # before then leaves files shorter than `bytes`, which `recover` removes.
            inputs = {
                name: {
                    "blob": f.stored or self.blobs.put_bytes(job_id, f"{name}.{f.blob_suffix}",
                                                            f.data),
                    "kind": f.kind,
                    "width": f.width,
                    "height": f.height,
                    "channels": f.channels,
                    "format": f.format,
                    "bytes": f.size,
                }
                for name, f in new.inputs.items()
            }
            now = self.now()
            row = dict(
                id=job_id,
                owner=new.owner,
                operation=new.operation,
                model=new.model,
                device=device,
                params=new.params,
                inputs=inputs,
                state=QUEUED,
                region={
                    "x": new.region.x,
                    "y": new.region.y,
                    "width": new.region.width,
                    "height": new.region.height,
                },
                progress={"step": 0, "total": 0, "stage": "queued"},
                error=None,
                results=[],
                cost=new.cost,
                attempts=0,
                cancel_requested=False,
                idempotency_key=new.idempotency_key,
                request_hash=new.request_hash,
                created_at=now,
                expires_at=now + self.retention,  # provisional: set again when it finishes
            )
            with self.db.session() as s:
                if admit is not None:
                    admit(s)
                self.queue.insert(s.connection(), _insert_statement(), row, new.model)
            job = Job(**row)
        except BaseException:
            self.blobs.delete_job(job_id)
            raise
        fields = {"job_id": job_id, "owner": new.owner, "operation": new.operation,
                  "model": new.model, "device": device, "cost": new.cost}
        if self.log_params:
            fields["params"] = new.params
        log.info("job queued", extra=fields)
        self._enqueue(job_id, device, cpu_only)
        self.events.notify(job_id)  # the queue moved: positions cached anywhere are read again
        try:
            if inputs:
                self.blobs.sync(job_id, [ref["blob"] for ref in inputs.values()])
        except OSError:  # not acknowledged: the job must not run on inputs a crash may cut
            self.cancel(job_id)
            raise
        return job

    def cpu_only(self, model: str, operation: str | None = None, params: dict | None = None
                 ) -> bool:
        """Classic operations run on the CPU in one call: they get the queue's CPU lane (unless
        they load another model too, as upscale's refine pass does)."""
        entry = self.catalog.get(model)
        if entry is None or entry.engine != "classic":
            return False
        op = registry().get(operation) if operation and params else None
        return not (op and op.extra_models and op.extra_models(params))

    def _enqueue(self, job_id: str, device: str, cpu_only: bool) -> None:
        if cpu_only:
            self.queue.enqueue_cpu(job_id)
        else:
            self.queue.enqueue(job_id, device)

    # --- running ----------------------------------------------------------------------------

    def run(self, job_id: str) -> bool:
        """Run one queued job to its end. Never raises for a job's own failure. False when the
        job was not there to run (gone, canceled, or started by someone else)."""
        with job_context(job_id):
            job = self._start(job_id)
            if job is None:
                return False
            self._run_started(job)
            return True

    def run_next(self, queued_order, on_start=None, alone: str | None = None) -> str | None:
        """Studio: claim the job that should start next (`queued_order()` lists queued ids in
        fair order) and run it; `on_start(job_id)` is told once it is claimed. Returns its id,
        or None when nothing is waiting. `alone`: a job to claim first, in one statement, if
        it is the only queued job (then it is the one fair order would pick)."""
        if alone is not None:
            with job_context(alone):
                job = self._claim(alone, alone=True)
                if job is not None:
                    return self._run_next_claimed(job, on_start)
        for _ in range(20):  # another worker may claim a candidate first: take the next one
            order = queued_order()
            if not order:
                return None
            for job_id in order[:5]:
                with job_context(job_id):
                    job = self._start(job_id)
                    if job is not None:
                        return self._run_next_claimed(job, on_start)
        return None

    def _run_next_claimed(self, job: Job, on_start) -> str:
        if on_start is not None:
            on_start(job.id)
        self._run_started(job)
        return job.id

    def _run_started(self, job: Job) -> None:
        with private_text(*job_texts(job.params)):  # no prompt in any line logged meanwhile
            self._run_claimed(job)

    def _run_claimed(self, job: Job) -> None:
        job_id = job.id
        log.info("job started", extra={"operation": job.operation, "model": job.model,
                                       "device": job.device, "attempt": job.attempts})
        reporter = _ProgressWriter(self, job_id)
        try:
            outputs = self._execute(job, reporter)
            results = self._store_outputs(job, outputs)
        except Canceled:
            self._finish(job_id, CANCELED, progress=reporter.last(stage="canceled"))
        except OperationError as exc:
            self._finish(job_id, FAILED, error={"code": exc.code, "message": exc.message})
        except MemoryError:
            self._finish(
                job_id,
                FAILED,
                error={
                    "code": "out_of_memory",
                    "message": "the server ran out of memory; try a smaller region or a "
                    "lighter model",
                },
            )
        except OSError as exc:
            code = "disk_full" if exc.errno == errno.ENOSPC else "storage_error"
            message = (
                "the server's disk is full; free space in its data directory and retry"
                if code == "disk_full"
                else f"the server could not read or write this job's files (job {job_id}); "
                "its log has the details"
            )
            log.exception("job %s: storage error", job_id)  # the path and cause stay here
            self.blobs.delete_results(job_id)
            self._finish(job_id, FAILED, error={"code": code, "message": message})
        except Exception:  # a bug or an engine failure: report it, keep the worker alive
            log.exception("job %s failed", job_id)  # library text and paths stay in the log
            message = f"the job failed unexpectedly (job {job_id}); the server log has the details"
            self._finish(job_id, FAILED, error={"code": "internal_error", "message": message})
        else:
            self._finish(
                job_id,
                SUCCEEDED,
                results=results,
                progress=reporter.last(stage="done", complete=True),
            )

    def _start(self, job_id: str) -> Job | None:
        """Queued → running; the conditional update is also the claim between studio workers
        racing for one job (one wins)."""
        job = self._claim(job_id)
        if job is None:  # gone, canceled, or started elsewhere; a cancel may be pending
            with self.db.session() as s:
                canceled = _transition(s, job_id, QUEUED, extra=CANCEL_PENDING,
                                       **self._finished_values(CANCELED))
            if canceled:
                self.events.notify(job_id)
            return None
        return job

    def _claim(self, job_id: str, alone: bool = False) -> Job | None:
        """The conditional update that claims a queued job (`alone`: only if no other job is
        queued), handing the row back. One statement, one round trip (RETURNING), atomic
        without a transaction around it."""
        with self.db.connection(durable=False) as c:  # a claim a crash takes back: run again
            row = c.execute(_claim_statement(alone), {
                "job_id": job_id, "started_at": self.now(), "worker": self.worker_id,
                "device": self.device or None,
            }).first()
        job = Job(**row._mapping) if row is not None else None
        if job is not None:
            self.events.notify(job_id)
        return job

    def _execute(self, job: Job, progress: _ProgressWriter):
        op = registry()[job.operation]
        entry = self.catalog.get(job.model)
        if entry is None:
            raise OperationError(
                "model_unknown", f"model {job.model!r} is no longer in the catalog"
            )
        inputs = {name: self._load_input(job.id, name, ref, op.deep)
                  for name, ref in job.inputs.items()}
        prepare = getattr(engine_module(entry.engine), "prepare", None)
        if prepare is not None:  # fetch missing weights, showing progress in the job
            prepare(entry, lambda done, total: progress(done, total, "downloading model"))
        progress.start_clock(self.job_timeout_s)  # fetching weights does not count
        progress(0, 0, "loading model")
        model = self.cache.get(entry, job.device)
        progress.check()
        params = op.params().load(job.params)
        for key, value in entry.defaults.items():
            if params.get(key) is None:
                params[key] = value
        ctx = OpContext(
            params=params,
            inputs=inputs,
            region=Region(**job.region),
            model=model,
            progress=progress,
            device=model.device,
            load=lambda model_id: self._load_extra(model_id, job.device, progress),
            catalog=self.catalog,
            scratch_dir=self.blobs.job_dir(job.id),
        )
        return op.run(ctx)

    def _load_input(self, job_id: str, name: str, ref, deep: bool = False) -> np.ndarray:
        """An input's pixels: raw ones mapped from the file, encoded ones decoded as the
        submission checked them (a 16-bit PNG `image` at 16 bits for a `deep` operation)."""
        if isinstance(ref, str):  # stored as .npy by an earlier version
            return self.blobs.get_array(job_id, ref)
        path = self.blobs.path(job_id, ref["blob"])
        width, height, channels = ref["width"], ref["height"], ref["channels"]
        from aiedit.imaging.codec import RAW_FORMATS, decode_image, decode_mask

        if ref["kind"] == "raw":
            import numpy as np

            fmt = ref.get("format") or ("rgba8" if channels == 4 else "gray8")
            shape = (height, width, channels) if channels > 1 else (height, width)
            return np.memmap(path, dtype=RAW_FORMATS[fmt][1], mode="r", shape=shape)
        if name == "mask":
            return decode_mask(name, path.read_bytes(), width * height, max(width, height))
        return decode_image(name, path.read_bytes(), width * height, max(width, height),
                            deep=deep and name == "image")

    def _load_extra(self, model_id: str, device: str, progress) -> LoadedModel:
        """Another model a job needs besides its own (a ControlNet, a detector)."""
        entry = self.catalog.get(model_id)
        if entry is None:
            raise OperationError("model_unknown", f"model {model_id!r} is not in the catalog")
        prepare = getattr(engine_module(entry.engine), "prepare", None)
        if prepare is not None:
            prepare(entry, lambda done, total: progress(done, total, f"downloading {model_id}"))
        progress(0, 0, f"loading {model_id}")
        return self.cache.get(entry, device)

    def _store_outputs(self, job: Job, outputs) -> list[dict]:
        results = []
        region = job.region
        for index, out in enumerate(outputs):
            if isinstance(out, ImageOutput):
                height, width = out.pixels.shape[:2]
                blob = self.blobs.put_array(job.id, f"result-{index}", out.pixels, durable=True)
                results.append(
                    {
                        "index": index,
                        "kind": "image",
                        "width": width,
                        "height": height,
                        "depth": 16 if out.pixels.dtype.itemsize == 2 else 8,
                        "offset": {"x": region["x"] + out.dx, "y": region["y"] + out.dy},
                        "seed": out.seed,
                        "blob": blob,
                    }
                )
            elif isinstance(out, VideoOutput):
                blob = self.blobs.put_bytes(
                    job.id, f"result-{index}.mp4", out.mp4, durable=True
                )
                results.append(
                    {
                        "index": index,
                        "kind": "video",
                        "width": out.width,
                        "height": out.height,
                        "offset": {"x": region["x"], "y": region["y"]},
                        "seed": out.seed,
                        "fps": out.fps,
                        "frames": out.frames,
                        "blob": blob,
                    }
                )
            else:
                raise TypeError(f"operation returned {type(out).__name__}, not an output")
        return results

    def _finish(self, job_id: str, state: str, *, results=None, error=None, progress=None) -> None:
        """Running → finished. A job that is no longer running (deleted, or finished by a
        recovery elsewhere) keeps its state; results written for it are removed."""
        self._live.pop(job_id, None)
        values = self._finished_values(state, results=results or [], error=error)
        if progress is not None:
            values["progress"] = progress
        with self.db.session() as s:
            finished = _transition(s, job_id, RUNNING, extra=_same_worker(self.worker_id),
                                   **values)
            started = finished.started_at if finished else None
            elsewhere = not finished and s.scalar(
                select(Job.id).where(Job.id == job_id, Job.state.in_((QUEUED, RUNNING)))
            )
        if not finished:
            log.warning("job %s was no longer running here when it ended as %s", job_id, state)
            if results and not elsewhere:  # studio: another worker may be writing them now
                self.blobs.delete_results(job_id)
            self.events.notify(job_id)
            return
        duration = (self.now() - as_utc(started)).total_seconds() if started else None
        log.log(
            logging.WARNING if state == FAILED else logging.INFO,
            "job %s", state,
            extra={"state": state, "duration_s": round(duration, 3) if duration else None,
                   "error_code": (error or {}).get("code")},
        )
        self.events.notify(job_id)

    def _finished_values(self, state: str, **values) -> dict:
        """A finished job's columns: retention counts from when it finished."""
        now = self.now()
        return {"state": state, "finished_at": now, "expires_at": now + self.retention, **values}

    def report_progress(self, job_id: str, progress: dict, persist: bool) -> None:
        self._live[job_id] = progress
        if persist:
            self.write_progress(job_id, progress)
        else:
            self.events.notify(job_id, progress_only=True, progress=progress)

    def write_progress(self, job_id: str, progress: dict) -> None:
        with self.db.session(durable=False) as s:  # progress need not wait for the disk
            _transition(s, job_id, RUNNING, extra=_same_worker(self.worker_id), progress=progress)
        self.events.notify(job_id, progress_only=True, progress=progress)

    def is_cancel_requested(self, job_id: str) -> bool:
        """True when the job should stop: canceled, deleted, or (studio) taken from this worker."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            return job is None or job.cancel_requested or not self._still_mine(job)

    def _still_mine(self, job: Job) -> bool:
        return job.state == RUNNING and job.worker == self.worker_id

    # --- cancel, delete, recovery, expiry -----------------------------------------------------

    def cancel(self, job_id: str) -> str:
        """Cancel a queued job now, or ask a running one to stop. Returns the job's new state."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return "gone"
            progress = {**(job.progress or {}), "stage": "canceled"}
        with self.db.session() as s:
            if _transition(s, job_id, QUEUED, cancel_requested=True, progress=progress,
                           **self._finished_values(CANCELED)):
                state = CANCELED
            elif _transition(s, job_id, RUNNING, cancel_requested=True):
                state = RUNNING
            else:  # it finished (or was deleted) meanwhile: nothing to cancel
                state = s.scalar(select(Job.state).where(Job.id == job_id)) or "gone"
        if state == CANCELED:
            self.queue.remove(job_id)
        elif state == RUNNING:
            self.queue.request_cancel(job_id)
        log.info("job cancel requested", extra={"job_id": job_id, "state": state})
        self.events.notify(job_id)
        return state

    def delete(self, job_id: str) -> None:
        """Delete a finished job with its files (one that has not finished, as an account's
        erasure may delete, gives back the credits it held)."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None:
                if job.state not in FINISHED:
                    ledger.settle(s, job_id, CANCELED)
                s.delete(job)
        self.blobs.delete_job(job_id)
        self.events.drop_preview(job_id)
        self.events.notify(job_id)
        self.events.forget(job_id)

    def recover(self) -> list[str]:
        """After a start: re-run jobs a crash cut off (once), fail them after that, queue the
        waiting ones in order, and remove files that belong to no job. Returns queued ids."""
        with self.db.session() as s:
            running = s.execute(select(Job.id, Job.attempts).where(Job.state == RUNNING)).all()
            for job_id, attempts in running:
                if attempts >= MAX_ATTEMPTS:
                    error = {
                        "code": "interrupted",
                        "message": "the server stopped while this job was running",
                    }
                    _transition(s, job_id, RUNNING, **self._finished_values(FAILED, error=error))
                else:
                    _transition(s, job_id, RUNNING, state=QUEUED,
                                progress={"step": 0, "total": 0, "stage": "queued"})
            queued = s.execute(
                select(Job.id, Job.device, Job.model, Job.operation, Job.params, Job.inputs)
                .where(Job.state == QUEUED)
                .order_by(Job.created_at)
            ).all()
        cut = [row.id for row in queued if not self._inputs_whole(row.id, row.inputs)]
        for job_id in cut:
            log.warning("job %s: a crash cut its inputs short before it was acknowledged; "
                        "removed (its client retries)", job_id)
            self.delete(job_id)
        self.sweep_orphans(min_age_s=0.0)
        queued = [row for row in queued if row.id not in cut]
        for job_id, device, model, operation, params, _ in queued:
            self._enqueue(job_id, device, self.cpu_only(model, operation, params))
        return [row[0] for row in queued]

    def _inputs_whole(self, job_id: str, inputs: dict | None) -> bool:
        """Whether every input file is there at its full size (rows stored before sizes
        were recorded count as whole)."""
        for ref in (inputs or {}).values():
            if isinstance(ref, dict) and "bytes" in ref:
                size = self.blobs.size(job_id, ref["blob"])
                if size is None or size < ref["bytes"]:
                    return False
        return True

    def sweep_orphans(self, min_age_s: float = ORPHAN_MIN_AGE_S) -> int:
        """Remove job folders that belong to no job and have not changed for `min_age_s`
        (younger ones may belong to a submission storing its inputs). Returns how many."""
        with self.db.session() as s:
            known = set(s.scalars(select(Job.id)))
        removed = 0
        for orphan in set(self.blobs.job_ids()) - known:
            if self.blobs.age_s(orphan) >= min_age_s:
                self.blobs.delete_job(orphan)
                removed += 1
        return removed

    def requeue_lost(self, dead_after_s: float) -> tuple[list[str], list[str]]:
        """Studio: jobs whose worker stopped sending heartbeats (killed, out of memory, machine
        gone) are queued again, or failed once they have been tried MAX_ATTEMPTS times. Returns
        (re-queued ids, failed ids). Conditional updates make this safe in every process."""
        cutoff = utcnow() - timedelta(seconds=dead_after_s)
        requeued, failed = [], []
        with self.db.statements() as s:  # every process asks every beat: one read, no transaction
            alive = select(Worker.id).where(Worker.heartbeat_at >= cutoff)
            lost = s.execute(
                select(Job.id, Job.worker, Job.attempts).where(
                    Job.state == RUNNING,
                    or_(Job.worker.is_(None), Job.worker.not_in(alive)),
                    Job.started_at < cutoff,
                )
            ).all()
        for job_id, worker, attempts in lost:
            if attempts >= MAX_ATTEMPTS:
                values = self._finished_values(FAILED, error={
                    "code": "worker_lost",
                    "message": f"the worker running this job stopped {attempts} times "
                    "(killed, or out of memory); it is not tried again",
                })
            else:
                values = {
                    "state": QUEUED,
                    "worker": None,
                    "progress": {"step": 0, "total": 0, "stage": "queued"},
                }
            with self.db.session() as s:
                changed = _transition(s, job_id, RUNNING, extra=_same_worker(worker), **values)
            if changed:
                (failed if values["state"] == FAILED else requeued).append(job_id)
                log.warning("job %s: worker %s stopped responding; %s", job_id, worker,
                            "failed" if values["state"] == FAILED else "queued again")
                self.events.notify(job_id)
        with self.db.statements() as s:
            s.execute(
                Worker.__table__.delete().where(
                    Worker.heartbeat_at < cutoff - timedelta(seconds=dead_after_s)
                )
            )
        return requeued, failed

    def queued_jobs(self) -> list[tuple[str, str, object, str, object]]:
        """Queued jobs as (id, owner, created_at, model, when the owner's latest job started),
        oldest first, in one query."""
        with self.db.statements() as s:
            return [tuple(row) for row in s.execute(_queued_jobs_statement())]

    def expire(self) -> int:
        """Delete finished jobs past their expiry time with their files (a running job's expiry
        is set again when it finishes: retention counts from then). A queued job keeps its
        files until it has run, unless `expire_queued` (hosted mode: uploads never outlive the
        promised period): then one still queued at its expiry is canceled (held credits
        return) and deleted too. Returns how many were deleted."""
        now = self.now()
        with self.db.session() as s:
            ids = list(
                s.scalars(select(Job.id).where(Job.expires_at < now, Job.state.in_(FINISHED)))
            )
            stale = list(s.scalars(
                select(Job.id).where(Job.expires_at < now, Job.state == QUEUED)
            )) if self.expire_queued else []
        for job_id in stale:
            if self.cancel(job_id) == CANCELED:
                log.info("job expired while queued", extra={"job_id": job_id})
                ids.append(job_id)
        for job_id in ids:
            self.delete(job_id)
        if ids:
            self.db.scrub()
        return len(ids)


class _ProgressWriter(Progress):
    """Progress for one job: throttled database writes, ETA per stage, cancel checks."""

    def __init__(self, runner: JobRunner, job_id: str):
        self._runner = runner
        self._job_id = job_id
        self._stage = ""
        self._stage_started = time.monotonic()
        self._last_write = time.monotonic()  # _start has just written the row
        self._last_cancel_poll = time.monotonic()  # the claim found no cancel requested
        self._state = {"step": 0, "total": 0, "stage": "starting"}
        self._deadline: float | None = None
        self._limit_s = 0.0
        super().__init__(self._report, self._canceled,
                         lambda step, pixels: runner.report_preview(job_id, step, pixels))

    def start_clock(self, limit_s: float) -> None:
        """From now on the job may run `limit_s` seconds (0: no limit)."""
        self._limit_s = limit_s
        self._deadline = time.monotonic() + limit_s if limit_s > 0 else None

    def check(self) -> None:
        super().check()
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise OperationError(
                "timeout",
                f"the job ran longer than this server allows ({self._limit_s:g} s, "
                "AIEDIT_JOB_TIMEOUT_S) and was stopped; try a smaller region, fewer steps or "
                "a lighter model",
            )

    def _canceled(self) -> bool:
        queue = self._runner.queue
        if queue is not None and queue.cancel_requested(self._job_id):
            return True
        now = time.monotonic()
        if now - self._last_cancel_poll < CANCEL_POLL_INTERVAL_S:
            return False
        self._last_cancel_poll = now
        return self._runner.is_cancel_requested(self._job_id)

    def _report(self, step: int, total: int, stage: str) -> None:
        now = time.monotonic()
        if stage != self._stage:
            self._stage, self._stage_started = stage, now
        eta = None
        if total and step:
            eta = round((now - self._stage_started) / step * (total - step), 1)
        self._state = {"step": step, "total": total, "stage": stage, "eta_s": eta}
        persist = now - self._last_write >= PROGRESS_WRITE_INTERVAL_S
        if persist:
            self._last_write = now
        self._runner.report_progress(self._job_id, self._state, persist)

    def last(self, stage: str, complete: bool = False) -> dict:
        state = dict(self._state, stage=stage, eta_s=0.0 if complete else None)
        if complete and state.get("total"):
            state["step"] = state["total"]
        return state


@functools.cache
def _queued_jobs_statement():
    """Built once: constructing it (an aliased, correlated subquery) cost more than running it,
    and workers and queue positions ask for it often."""
    started = aliased(Job)
    last_started = (
        select(func.max(started.started_at))
        .where(started.owner == Job.owner)
        .correlate(Job)
        .scalar_subquery()
    )
    return (select(Job.id, Job.owner, Job.created_at, Job.model, last_started)
            .where(Job.state == QUEUED)
            .order_by(Job.created_at, Job.id))


@functools.cache
def _insert_statement():
    """A new job's INSERT, its values given as parameters: one statement object for every job,
    so it is compiled once (see `_claim_statement`)."""
    return insert(Job)


@functools.cache
def _claim_statement(alone: bool):
    """The claim's UPDATE, built once (building it cost as much as running it), run on a Core
    connection (an ORM session costs as much again): parameters job_id, started_at, worker
    and device (None: the job's own stays); it hands back the job's row."""
    job_id = bindparam("job_id", type_=String)
    query = update(Job).where(Job.id == job_id, Job.state == QUEUED, ~Job.cancel_requested)
    if alone:
        other = aliased(Job)
        query = query.where(~select(other.id).where(other.state == QUEUED,
                                                    other.id != job_id).exists())
    return (
        query.values(
            state=RUNNING,
            started_at=bindparam("started_at", type_=DateTime(timezone=True)),
            attempts=Job.attempts + 1,
            progress={"step": 0, "total": 0, "stage": "starting"},
            worker=bindparam("worker", type_=String),
            device=func.coalesce(bindparam("device", type_=String), Job.device),
        )
        .returning(*Job.__table__.columns)
    )


def _transition(session, job_id: str, expected: str, extra=None, **values):
    """`UPDATE jobs SET … WHERE id = job_id AND state = expected [AND extra]`; False if it
    changed nothing. `extra`: CANCEL_PENDING (a cancel was requested) or `_same_worker(w)`.
    Finishing a job hands back its (operation, model, started_at) row from the same statement
    (RETURNING), which the statistics and the caller use: one round trip instead of three on
    the path every job ends by."""
    if not values:
        values = {"state": expected}
    finishing = values.get("state") in FINISHED
    kind, params = extra or (None, {})
    query = _transition_statement(tuple(sorted(values)), kind, finishing)
    params = {**params, **{f"v_{key}": value for key, value in values.items()},
              "w_id": job_id, "w_state": expected}
    # on the session's Core connection, built once per shape: building the UPDATE and the
    # ORM's handling of it cost more than running it
    session.flush()
    result = session.connection().execute(query, params)
    if not finishing:
        return result.rowcount == 1
    row = result.first()
    if row is None:
        return False
    stats.record_finished(session, tuple(row), values["state"],
                          values.get("finished_at") or utcnow(), values.get("error"))
    # every way a job ends passes here once: its held credits are charged or released
    ledger.settle(session, job_id, values["state"])
    return row


CANCEL_PENDING = ("cancel_pending", {})  # an `extra` of _transition: (condition, parameters)


@functools.cache
def _transition_statement(keys: tuple[str, ...], extra: str | None, finishing: bool):
    """The UPDATE of `_transition` for one set of columns: parameters w_id, w_state, w_worker
    (extra "worker") and v_<column> for each column set."""
    columns = Job.__table__.c
    query = update(Job).where(Job.id == bindparam("w_id", type_=String),
                              Job.state == bindparam("w_state", type_=String))
    if extra == "cancel_pending":
        query = query.where(Job.cancel_requested)
    elif extra == "no_worker":
        query = query.where(Job.worker.is_(None))
    elif extra == "worker":
        query = query.where(Job.worker == bindparam("w_worker", type_=String))
    elif extra is not None:
        raise ValueError(f"unknown condition {extra!r}")
    query = query.values({key: bindparam(f"v_{key}", type_=columns[key].type) for key in keys})
    return query.returning(Job.operation, Job.model, Job.started_at) if finishing else query


def _same_worker(worker: str | None) -> tuple:
    """The job is still the one `worker` runs (None: one running outside studio workers)."""
    return ("no_worker", {}) if worker is None else ("worker", {"w_worker": worker})
