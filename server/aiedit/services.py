"""The long-lived parts of a running server, built once from the config."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiedit.billing.settings import BillingSettings
from aiedit.config import Config
from aiedit.engines import load as load_model
from aiedit.engines.cache import ModelCache
from aiedit.engines.catalog import Catalog
from aiedit.engines.downloads import DownloadTracker, tracker
from aiedit.jobs.events import JobEvents
from aiedit.jobs.live import LiveSessions
from aiedit.jobs.queue_base import JobQueue
from aiedit.jobs.runner import JobRunner
from aiedit.store import datadir
from aiedit.store.blobs import BlobStore
from aiedit.store.db import Database, utcnow
from aiedit.styles import StyleBook

if TYPE_CHECKING:
    from aiedit.jobs.live_redis import RedisLiveSessions

log = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 600.0


@dataclass
class Services:
    config: Config
    db: Database
    blobs: BlobStore
    catalog: Catalog
    cache: ModelCache
    events: JobEvents
    runner: JobRunner
    queue: JobQueue
    downloads: DownloadTracker | None = None
    styles: StyleBook | None = None
    live: LiveSessions | RedisLiveSessions | None = None  # live painting sessions
    billing: BillingSettings | None = None  # prices, packs and plans (hosted mode charges)

    @classmethod
    def build(cls, config: Config, clock: Callable[[], datetime] | None = None) -> Services:
        """`clock` tells the runner the time (UTC); tests pass one they move to prove expiry."""
        datadir.prepare(config.data_dir, config.database, config.blob_dir)
        # Engines load weights without seeing the config: they read the folder from here.
        os.environ["AIEDIT_MODELS_DIR"] = str(config.weights_dir)
        if config.studio:
            _check_studio(config)
        db = Database(config.database)
        if config.studio:
            db.check_current()
        else:
            db.migrate()
        blobs = BlobStore(config.blob_dir)
        catalog = Catalog.load(config.catalog_file or None, lora_dir=config.lora_dir or None)
        cache = ModelCache(load_model, max_bytes=config.model_cache_bytes,
                           on_evict=lambda model: _evicted(cache, model),
                           free_memory=_free_memory)
        if config.studio:
            from aiedit.jobs.events_redis import RedisJobEvents
            from aiedit.jobs.queue_celery import CeleryQueue, redis_client

            client = redis_client(config.broker_url)
            events = RedisJobEvents(client)
        else:
            events = JobEvents()
        runner = JobRunner(
            db,
            blobs,
            catalog,
            cache,
            events,
            retention=timedelta(hours=config.retention_hours),
            job_timeout_s=config.job_timeout_s,
            log_params=config.log_prompts,
            clock=clock or utcnow,
            expire_queued=config.hosted,  # the promise: no upload outlives the period
        )
        if config.studio:
            from aiedit.jobs.live_redis import RedisLiveSessions

            queue = CeleryQueue(runner, config, client)
            live = RedisLiveSessions(runner, queue, client)
        else:
            from aiedit.engines import threads
            from aiedit.jobs.queue_embedded import EmbeddedQueue

            queue = EmbeddedQueue(runner, config.devices, thread_plan=threads.plan(config))
            live = LiveSessions(runner)
        return cls(config, db, blobs, catalog, cache, events, runner, queue, downloads=tracker(),
                   styles=StyleBook.load(config.styles_file or None), live=live,
                   billing=BillingSettings.load(config.billing_file or None))

    def start(self) -> None:
        """Recover what a previous run left, start the workers and the retention sweeper.
        Studio: workers are other processes; a reaper re-queues jobs of dead workers."""
        if self.config.studio:
            self.events.start()
        else:
            requeued = self.runner.recover()
            if requeued:
                log.info("re-queued %d job(s) from the previous run", len(requeued))
        self.queue.start()
        self._stop_sweeper = threading.Event()
        threading.Thread(target=self._sweep, daemon=True, name="aiedit-sweeper").start()

    def stop(self) -> None:
        if hasattr(self, "_stop_sweeper"):
            self._stop_sweeper.set()
        if self.live is not None:
            self.live.close_all()
        self.queue.stop()
        self.events.stop()
        self.db.dispose()

    def sweep_once(self) -> bool:
        """Delete expired jobs and folders that belong to no job. Never raises: a failure is
        logged and the next sweep tries again. Returns whether the sweep succeeded."""
        try:
            self.runner.expire()
            self.runner.sweep_orphans()
        except Exception:
            log.exception("retention sweep failed; trying again in %.0f s", SWEEP_INTERVAL_S)
            return False
        return True

    def _sweep(self) -> None:
        while True:
            self.sweep_once()
            if self._stop_sweeper.wait(self.sweep_interval_s):
                return

    @property
    def sweep_interval_s(self) -> float:
        """Every SWEEP_INTERVAL_S, or a tenth of a short retention period (at least 1 s), so
        files outlive their expiry by at most that."""
        retention_s = self.config.retention_hours * 3600
        return min(SWEEP_INTERVAL_S, max(1.0, retention_s / 10))


def _check_studio(config: Config) -> None:
    missing = [name for name, value in (("AIEDIT_DATABASE_URL", config.database_url),
                                        ("AIEDIT_BROKER_URL", config.broker_url)) if not value]
    if missing:
        raise ValueError(
            f"studio mode needs {' and '.join(missing)} (e.g. "
            "postgresql+psycopg://aiedit@127.0.0.1:5432/aiedit and redis://127.0.0.1:6379/0)"
        )
    if not config.database_url.startswith("postgresql"):
        raise ValueError(
            "studio mode needs PostgreSQL: AIEDIT_DATABASE_URL must be a postgresql+psycopg:// "
            f"URL (got {config.database_url.split(':', 1)[0]}:...)"
        )
    if not config.broker_url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"AIEDIT_BROKER_URL must be a redis:// URL (got {config.broker_url!r})")


def _free_memory(device: str) -> int:
    from aiedit.engines import devices

    return devices.free_bytes(devices.resolve(device))


def _evicted(cache: ModelCache, model) -> None:
    """A ControlNet leaves: the pipelines built around it go too, so its memory is freed; an
    IP-Adapter leaves the pipelines that hold it."""
    if model.engine in ("controlnet", "ip_adapter"):
        for other in cache.loaded():
            if other.engine != "diffusion":
                continue
            if model.engine == "controlnet":
                other.obj.forget_siblings(model.obj)
            elif other.obj.holds_ip_adapter(model.obj):
                other.obj.use_ip_adapter(None)
    _release_memory(model)


def _release_memory(model) -> None:
    from aiedit.engines import devices

    devices.release(model.device)
