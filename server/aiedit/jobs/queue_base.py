"""The queue interface. Implementations differ only in transport: each carries job ids whose rows
and blobs fully describe the work, and hands them to `JobRunner.run`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

CPU_DEVICE = "cpu"


@dataclass
class WorkerInfo:
    """A worker as the admin page and /metrics show it."""

    name: str
    device: str
    job_id: str | None = None  # the job it runs now
    models: list[str] = field(default_factory=list)  # model ids it holds loaded
    last_seen: datetime | None = None  # its last heartbeat (None: in this process, alive)


class JobQueue(ABC):
    @abstractmethod
    def start(self) -> None:
        """Start consuming (workers, connections)."""

    @abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming; a running job is left for recovery at the next start."""

    @abstractmethod
    def enqueue(self, job_id: str, device: str) -> None:
        """Queue a stored job for a device queue."""

    def insert(self, connection, statement, row: dict, model: str) -> None:
        """Run `statement`, the INSERT that stores a new job (`row`: its values), on the
        connection of its transaction: a transport may have it hand back what `enqueue` will
        need (RETURNING), instead of a statement of its own (the studio queue: which worker's
        queue gets the ticket)."""
        connection.execute(statement, row)

    def enqueue_cpu(self, job_id: str) -> None:
        """Queue a stored job that needs only the CPU (a classic operation). Transports with a
        CPU lane run it there, so it never waits behind GPU work; by default it is queued like
        any job for the device "cpu"."""
        self.enqueue(job_id, CPU_DEVICE)

    @abstractmethod
    def remove(self, job_id: str) -> None:
        """Forget a queued job (it was canceled before it started)."""

    @abstractmethod
    def request_cancel(self, job_id: str) -> None:
        """Ask the worker running this job to stop at its next step."""

    @abstractmethod
    def cancel_requested(self, job_id: str) -> bool:
        """True once `request_cancel` was called for this job (fast, in-process check)."""

    @abstractmethod
    def position(self, job_id: str) -> int | None:
        """Jobs ahead of this one (the running one included), or None if it is not waiting."""

    def estimate(self, job_id: str) -> tuple[int | None, float | None]:
        """(position, seconds until the job starts or None when unknown)."""
        return self.position(job_id), None

    @abstractmethod
    def pick_device(self) -> str:
        """The device queue a new job should go to."""

    def run_task(self, device: str, task) -> bool:
        """Run a transient task (a live frame) on `device`'s worker in this process, ahead of
        queued jobs. False when this transport cannot (its workers are other processes)."""
        return False

    def workers(self) -> list[WorkerInfo]:
        """The workers that take jobs from this queue, and the models each holds."""
        return []
