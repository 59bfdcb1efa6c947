"""The studio queue: Celery workers with Redis as broker, the database as the queue's record.

Submitting stores the job row (`queued`) and sends a Celery message, a ticket, to the workers.
A worker that takes a ticket claims the job that should start next from the database (users
take turns, see `fair.py`) with a conditional update, so no job runs twice at once, and runs it
through the one `JobRunner`. Tickets are acknowledged late; a worker runs one job at a time.

Tickets for a model some idle worker already holds go to that worker's own queue; the others
go to the shared queue every worker reads. The INSERT that stores a job also answers which
(RETURNING), and a ticket names the job it was sent for: a worker that finds that job alone in
the queue claims it in one statement, without reading the queue first.

Redis carries signals only: a lost ticket (Redis restarted without persistence) is replaced by
an idle worker that finds jobs waiting, and a killed worker's job is queued again by the reaper
(any process) once its heartbeat stops, long before the broker's visibility timeout would
redeliver the ticket."""

from __future__ import annotations

import functools
import logging
import threading
import time
from datetime import timedelta

import redis
from celery import Celery
from sqlalchemy import DateTime, bindparam, cast, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from aiedit.config import Config
from aiedit.jobs import broker
from aiedit.jobs.fair import fair_order
from aiedit.jobs.queue_base import CPU_DEVICE, JobQueue, WorkerInfo
from aiedit.jobs.runner import RUNNING, SUCCEEDED, JobRunner
from aiedit.store.db import utcnow
from aiedit.store.models import Job, Worker

log = logging.getLogger(__name__)

TASK = "aiedit.work"
LIVE_TASK = "aiedit.live"  # a live session has a frame waiting (see live_redis.py)
SHARED_QUEUE = "aiedit.jobs"
CANCEL_KEY = "aiedit:cancel:{}"
CANCEL_TTL_S = 24 * 3600
CANCEL_CHECK_S = 0.2  # a running job asks Redis at most this often whether it was canceled
ANY_DEVICE = "any"
ESTIMATE_TTL_S = 1.0
ORDER_TTL_S = 0.25  # the longest a queue position may lag a change whose event was lost


def worker_queue(worker_id: str) -> str:
    return f"aiedit.worker.{worker_id}"


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
    )


def make_celery(broker_url: str) -> Celery:
    app = Celery("aiedit", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport=broker.transport_for(broker_url),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_ignore_result=True,
        task_default_queue=SHARED_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a Redis restart
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


class CeleryQueue(JobQueue):
    def __init__(self, runner: JobRunner, config: Config, client: redis.Redis,
                 celery: Celery | None = None):
        self._runner = runner
        self._config = config
        self._redis = client
        self.celery = celery or make_celery(config.broker_url)
        self._tickets = broker.Publisher(self.celery)
        self._cancel_checked: dict[str, float] = {}
        self._canceled: set[str] = set()
        self._estimate_at: tuple[float, tuple] | None = None
        self._order_at: tuple[float, int, dict[str, int]] | None = None
        self._routes: dict[str, str] = {}  # job id -> ticket queue, chosen as it was stored
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        runner.queue = self

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the reaper: jobs of workers whose heartbeat stopped are queued again."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._maintain, daemon=True, name="aiedit-reaper")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._tickets.close()

    def _maintain(self) -> None:
        while not self._stopping.wait(self._config.heartbeat_s):
            try:
                self.reap()
            except Exception:  # a database outage: try again at the next beat
                log.exception("reaper: could not check for lost jobs")

    def reap(self) -> list[str]:
        requeued, _ = self._runner.requeue_lost(self._config.worker_dead_after_s)
        for job_id in requeued:
            self.enqueue(job_id, ANY_DEVICE)
        return requeued

    # --- the queue interface -----------------------------------------------------------------

    def enqueue(self, job_id: str, device: str) -> None:
        """Send a ticket; the job itself is already in the database. The ticket names the job:
        a worker that finds it alone in the queue claims it without reading the queue first."""
        self.send_ticket(self._routes.pop(job_id, None) or self._route(job_id),
                         job_id, cpu_only=device == CPU_DEVICE)

    def send_ticket(self, queue: str, job_id: str | None = None, cpu_only: bool = False) -> bool:
        """A ticket: a worker that takes it runs the job that should start next. `job_id`, the
        job this ticket was sent for (`cpu_only`: a classic one), is a hint, never an order."""
        try:
            self._tickets.send(TASK, [job_id, cpu_only] if job_id else None, queue)
            return True
        except Exception as exc:  # Redis is down: an idle worker finds the job when it is back
            log.warning("could not send a job ticket to %s (%s); workers will find the job "
                        "when the broker is back", queue, exc)
            return False

    def send_live_ticket(self, session_id: str, queue: str, warm: bool = False) -> bool:
        """A live session has a frame waiting (or, `warm`, a model to load ahead): a ticket in
        the same lists as job tickets, so frames and jobs take turns on the workers."""
        try:
            self._tickets.send(LIVE_TASK, [session_id, warm], queue)
            return True
        except Exception as exc:
            log.warning("could not send a live ticket to %s (%s)", queue, exc)
            return False

    def route_model(self, model: str | None) -> str:
        """The ticket queue for work on `model`: an idle worker that holds it, else any."""
        with self._runner.db.statements() as s:
            return _queue_of(s.scalar(select(_idle_holder()), self._holder_params(model)))

    def insert(self, connection, statement, row: dict, model: str) -> None:
        """Store the job and route it in one statement: the INSERT hands back the idle worker
        that holds the job's model (RETURNING), and `enqueue` sends the ticket there."""
        if len(self._routes) > 1000:  # left by transactions that failed after this
            self._routes.clear()
        holder = connection.execute(_returning_holder(statement),
                                    {**row, **self._holder_params(model)}).scalar_one()
        self._routes[row["id"]] = _queue_of(holder)

    def _route(self, job_id: str) -> str:
        with self._runner.db.statements() as s:
            model = s.scalar(select(Job.model).where(Job.id == job_id))
        return self.route_model(model)

    def _holder_params(self, model: str | None) -> dict:
        return {"holder_alive": utcnow() - timedelta(seconds=self._config.worker_dead_after_s),
                "holder_models": [model]}

    def remove(self, job_id: str) -> None:
        """Nothing to do: its ticket will find the job canceled and take the next one."""

    def request_cancel(self, job_id: str) -> None:
        self._canceled.add(job_id)
        try:
            self._redis.set(CANCEL_KEY.format(job_id), 1, ex=CANCEL_TTL_S)
        except redis.RedisError as exc:  # the worker still sees the flag in the database
            log.warning("could not flag job %s canceled in Redis (%s)", job_id, exc)

    def cancel_requested(self, job_id: str) -> bool:
        if job_id in self._canceled:
            return True
        now = time.monotonic()
        if now - self._cancel_checked.get(job_id, 0.0) < CANCEL_CHECK_S:
            return False
        self._cancel_checked[job_id] = now
        if len(self._cancel_checked) > 1000:
            self._cancel_checked = {job_id: now}
        try:
            if self._redis.exists(CANCEL_KEY.format(job_id)):
                self._canceled.add(job_id)
                return True
        except redis.RedisError:
            pass  # the runner's database check covers it
        return False

    def position(self, job_id: str) -> int | None:
        return self.estimate(job_id)[0]

    def estimate(self, job_id: str) -> tuple[int | None, float | None]:
        """(jobs ahead, running ones included; seconds until it starts), or (None, None)."""
        index = self._positions().get(job_id)
        if index is None:  # queued since the queue was read (or gone): read it again
            index = self._positions(fresh=True).get(job_id)
            if index is None:
                return None, None
        running, workers, mean = self._throughput()
        eta = round(mean * (index + running) / workers, 1) if workers and mean else None
        return index + running, eta

    def _positions(self, fresh: bool = False) -> dict[str, int]:
        """Each queued job's place in the fair order, as positions show it. Every waiting
        client's long-poll asks, twice a second: one read of the queue serves them all until
        a job is queued, started, finished or canceled (in any process: events arrive through
        Redis, and a submission in any process sends one), and for ORDER_TTL_S at most (a lost
        event). Claims never use it: they read the queue afresh."""
        changes, now = self._runner.events.changes(), time.monotonic()
        cached = self._order_at
        if not fresh and cached and cached[1] == changes and now - cached[0] < ORDER_TTL_S:
            return cached[2]
        positions = {job_id: index for index, job_id in enumerate(self.queued_order())}
        self._order_at = (now, changes, positions)
        return positions

    def _throughput(self) -> tuple[int, int, float | None]:
        """(jobs running, live workers, mean run time of recent jobs), read at most every
        ESTIMATE_TTL_S: every queued job's answer uses them."""
        now = time.monotonic()
        if self._estimate_at and now - self._estimate_at[0] < ESTIMATE_TTL_S:
            return self._estimate_at[1]
        alive = utcnow() - timedelta(seconds=self._config.worker_dead_after_s)
        with self._runner.db.statements() as s:  # two reads, no transaction around them
            running, workers = s.execute(select(
                select(func.count()).where(Job.state == RUNNING).scalar_subquery(),
                select(func.count()).select_from(Worker).where(Worker.heartbeat_at >= alive)
                .scalar_subquery(),
            )).one()
            running, workers = running or 0, workers or 0
            recent = s.execute(
                select(Job.started_at, Job.finished_at)
                .where(Job.state == SUCCEEDED, Job.started_at.is_not(None))
                .order_by(Job.finished_at.desc())
                .limit(20)
            ).all()
        mean = (sum((end - start).total_seconds() for start, end in recent) / len(recent)
                if recent else None)
        self._estimate_at = (now, (running, workers, mean))
        return running, workers, mean

    def queued_order(self) -> list[str]:
        queued = self._runner.queued_jobs()
        return fair_order(queued, {owner: served for _, owner, _, _, served in queued})

    def pick_device(self) -> str:
        return ANY_DEVICE

    def workers(self) -> list[WorkerInfo]:
        """The live workers (heartbeat within worker_dead_after_s) as they last reported."""
        alive = utcnow() - timedelta(seconds=self._config.worker_dead_after_s)
        with self._runner.db.statements() as s:
            rows = s.scalars(
                select(Worker).where(Worker.heartbeat_at >= alive).order_by(Worker.id)
            ).all()
        return [
            WorkerInfo(name=w.id, device=w.device, job_id=w.job, models=list(w.models or []),
                       last_seen=w.heartbeat_at)
            for w in rows
        ]

    def pending_tickets(self, queue: str) -> int:
        return int(self._redis.llen(queue))


@functools.cache
def _idle_holder():
    """The idle, live worker that holds a model and beat last: a scalar subquery (its id, or
    NULL when there is none), built once, with parameters holder_alive (the oldest heartbeat
    of a live worker) and holder_models ([the model])."""
    running = select(Job.id).where(Job.state == RUNNING)
    return (
        select(Worker.id)
        .where(Worker.heartbeat_at >= bindparam("holder_alive", type_=DateTime(timezone=True)),
               or_(Worker.job.is_(None), Worker.job.not_in(running)),
               cast(Worker.models, JSONB).contains(bindparam("holder_models", type_=JSONB)))
        .order_by(Worker.heartbeat_at.desc())
        .limit(1)
        .scalar_subquery()
    )


@functools.cache
def _returning_holder(insert_statement):
    """`insert_statement` handing back `_idle_holder()`, built once per statement."""
    return insert_statement.returning(_idle_holder())


def _queue_of(worker_id: str | None) -> str:
    """A ticket for a worker goes to its own queue; without one, to the queue all share."""
    return worker_queue(worker_id) if worker_id else SHARED_QUEUE

