"""The personal-mode queue: in-process, one worker thread per device, first in first out, and
one more for classic operations (CPU only), so they never wait behind GPU work."""

from __future__ import annotations

import logging
import threading
from collections import deque

from aiedit.engines import threads
from aiedit.engines.threads import ThreadPlan
from aiedit.jobs.queue_base import CPU_DEVICE, JobQueue, WorkerInfo
from aiedit.jobs.runner import JobRunner

log = logging.getLogger(__name__)
CPU_LANE = "classic-cpu"  # the lane of jobs that need only the CPU


class EmbeddedQueue(JobQueue):
    def __init__(self, runner: JobRunner, devices: list[str],
                 thread_plan: ThreadPlan | None = None):
        self._runner = runner
        self._thread_plan = thread_plan
        self._devices = devices or ["auto"]
        self._lanes = [*self._devices, CPU_LANE]
        self._waiting: dict[str, deque[str]] = {lane: deque() for lane in self._lanes}
        self._running: dict[str, str | None] = {lane: None for lane in self._lanes}
        self._cancel: set[str] = set()
        # transient tasks (live frames) run on the same worker, taking turns with jobs
        self._tasks: dict[str, deque] = {d: deque() for d in self._devices}
        self._task_turn: dict[str, bool] = {d: True for d in self._devices}
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        runner.queue = self

    def start(self) -> None:
        self._stopping = False
        for lane in self._lanes:
            thread = threading.Thread(
                target=self._work, args=(lane,), daemon=True, name=f"aiedit-worker-{lane}"
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True  # a running job finishes, or is recovered at the next start
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def enqueue(self, job_id: str, device: str) -> None:
        self._append(self._waiting.get(device) or self._waiting[self._devices[0]], job_id)

    def enqueue_cpu(self, job_id: str) -> None:
        self._append(self._waiting[CPU_LANE], job_id)

    def _append(self, queue: deque[str], job_id: str) -> None:
        with self._cond:
            if job_id not in queue:
                queue.append(job_id)
            self._cond.notify_all()

    def run_task(self, device: str, task) -> bool:
        """Run `task()` on `device`'s worker before the next queued job; when jobs are waiting,
        tasks and jobs take turns, so a stream of tasks never starves them."""
        with self._cond:
            if self._stopping:
                return False
            queue = self._tasks.get(device)
            if queue is None:
                queue = self._tasks[self._devices[0]]
            queue.append(task)
            self._cond.notify_all()
        return True

    def remove(self, job_id: str) -> None:
        with self._cond:
            for queue in self._waiting.values():
                if job_id in queue:
                    queue.remove(job_id)

    def request_cancel(self, job_id: str) -> None:
        with self._cond:
            self._cancel.add(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return job_id in self._cancel

    def position(self, job_id: str) -> int | None:
        with self._cond:
            for lane, queue in self._waiting.items():
                if job_id in queue:
                    return queue.index(job_id) + (self._running[lane] is not None)
        return None

    def pick_device(self) -> str:
        with self._cond:
            return min(
                self._devices, key=lambda d: len(self._waiting[d]) + (self._running[d] is not None)
            )

    def workers(self) -> list[WorkerInfo]:
        """One worker thread per device and one for classic operations; they share this
        process's model cache."""
        held = self._runner.cache.held()
        with self._cond:
            running = dict(self._running)
        devices = {lane: CPU_DEVICE if lane == CPU_LANE else lane for lane in self._lanes}
        return [
            WorkerInfo(
                name=f"embedded-{lane}",
                device=devices[lane],
                job_id=running[lane],
                models=sorted({model for model, on in held if on == devices[lane]}),
            )
            for lane in self._lanes
        ]

    def idle(self) -> bool:
        with self._cond:
            return not any(self._waiting.values()) and not any(self._running.values())

    def _work(self, lane: str) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping or self._waiting[lane] or self._tasks.get(lane)
                )
                if self._stopping:
                    return
                task = None
                tasks = self._tasks.get(lane)
                if tasks and (self._task_turn[lane] or not self._waiting[lane]):
                    task = tasks.popleft()
                    self._task_turn[lane] = False
                else:
                    job_id = self._waiting[lane].popleft()
                    self._running[lane] = job_id
                    self._task_turn[lane] = True
            if task is not None:
                try:
                    if self._thread_plan is not None:
                        threads.apply_in_worker(self._thread_plan)
                    task()
                except Exception:  # a task reports its own failures; keep the worker alive
                    log.exception("worker %s: a task failed", lane)
                continue
            try:
                if self._thread_plan is not None:
                    threads.apply_in_worker(self._thread_plan)
                self._runner.run(job_id)
            except Exception:  # the runner reports job failures itself; this is a store fault
                log.exception("worker %s: job %s could not be run", lane, job_id)
            finally:
                with self._cond:
                    self._running[lane] = None
                    self._cancel.discard(job_id)
                    self._cond.notify_all()

