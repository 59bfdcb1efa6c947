"""Live frames are transient tasks on the device worker: ahead of queued jobs, but taking turns
with them while jobs wait, so a stream of frames never starves other users' jobs."""

from __future__ import annotations

import threading

from aiedit.jobs.live import LiveSessions
from aiedit.jobs.queue_base import JobQueue
from aiedit.jobs.queue_embedded import EmbeddedQueue


class RecordingRunner:
    """Runs nothing: records the order in which the worker hands out work."""

    def __init__(self):
        self.queue = None
        self.order: list[str] = []

    def run(self, job_id: str) -> None:
        self.order.append(job_id)


def test_tasks_and_jobs_take_turns_on_one_worker():
    runner = RecordingRunner()
    queue = EmbeddedQueue(runner, ["cpu"])
    for i in range(3):
        queue.enqueue(f"job{i}", "cpu")
    for i in range(4):
        assert queue.run_task("cpu", lambda i=i: runner.order.append(f"task{i}"))
    done = threading.Event()
    queue.run_task("cpu", done.set)
    queue.start()
    try:
        assert done.wait(10)
        while len(runner.order) < 7:
            threading.Event().wait(0.01)
    finally:
        queue.stop()
    assert runner.order == ["task0", "job0", "task1", "job1", "task2", "job2", "task3"]


def test_live_sessions_need_a_queue_that_runs_tasks_in_process():
    class OtherProcesses(JobQueue):  # a transport whose workers are elsewhere (Celery)
        start = stop = enqueue = remove = request_cancel = lambda *a, **k: None
        cancel_requested = position = pick_device = lambda *a, **k: None

    runner = RecordingRunner()
    runner.queue = OtherProcesses()
    assert not LiveSessions(runner).available
    EmbeddedQueue(runner, ["cpu"])
    assert LiveSessions(runner).available
