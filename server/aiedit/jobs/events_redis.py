"""Studio mode: job changes travel between processes over Redis pub/sub, so a long-poll in any
API process wakes when a worker on another machine reports progress or finishes a job.

Redis is a signal here, never the record: every change is in the database first, and a
long-poll re-reads the database at a short interval, so a Redis outage only slows wake-ups."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict

import redis

from aiedit.jobs.events import JobEvents, preview_png

log = logging.getLogger(__name__)
CHANNEL = "aiedit:events"
MAX_LIVE = 10_000
RETRY_S = 1.0
PREVIEW_KEY = "aiedit:preview:{}"  # a hash {step, height, width, rgb}: the worker writes, any
# API node reads (and encodes the PNG then: the job's thread does not wait for that)
PREVIEW_TTL_S = 3600  # a preview outlives its job's run by an hour at most (deleted with it)


class RedisJobEvents(JobEvents):
    def __init__(self, client: redis.Redis):
        super().__init__()
        self._redis = client
        self._origin = uuid.uuid4().hex
        self._live: OrderedDict[str, dict] = OrderedDict()
        self._live_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub = None

    def notify(
        self, job_id: str, progress_only: bool = False, progress: dict | None = None
    ) -> None:
        super().notify(job_id, progress_only)
        message = {"job": job_id, "p": progress_only, "progress": progress, "o": self._origin}
        try:
            self._redis.publish(CHANNEL, json.dumps(message))
        except redis.RedisError as exc:
            log.debug("events: cannot publish (%s); other processes will poll", exc)

    def live(self, job_id: str) -> dict | None:
        with self._live_lock:
            return self._live.get(job_id)

    # Step previews live in Redis, so the API node that answers /preview need not be the
    # worker that made them. Losing one to a Redis outage only means no preview for a while.

    def put_preview(self, job_id: str, step: int, pixels) -> None:
        key = PREVIEW_KEY.format(job_id)
        height, width = pixels.shape[:2]
        try:
            with self._redis.pipeline() as pipe:
                pipe.hset(key, mapping={"step": step, "height": height, "width": width,
                                        "rgb": pixels.tobytes()})
                pipe.expire(key, PREVIEW_TTL_S)
                pipe.execute()
        except redis.RedisError as exc:
            log.debug("events: cannot store a preview (%s)", exc)

    def preview(self, job_id: str) -> tuple[int, bytes] | None:
        try:
            step, height, width, rgb = self._redis.hmget(
                PREVIEW_KEY.format(job_id), ["step", "height", "width", "rgb"])
        except redis.RedisError:
            return None
        if None in (step, height, width, rgb):
            return None
        import numpy as np

        pixels = np.frombuffer(rgb, np.uint8).reshape(int(height), int(width), 3)
        return int(step), preview_png(pixels)

    def preview_step(self, job_id: str) -> int | None:
        try:
            step = self._redis.hget(PREVIEW_KEY.format(job_id), "step")
        except redis.RedisError:
            return None
        return None if step is None else int(step)

    def drop_preview(self, job_id: str) -> None:
        try:
            self._redis.delete(PREVIEW_KEY.format(job_id))
        except redis.RedisError as exc:
            log.debug("events: cannot drop a preview (%s); it expires", exc)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._listen, daemon=True,
                                            name="aiedit-events")
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # closing a dead connection: nothing left to release
                pass

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(CHANNEL)
                while not self._stopping.is_set():
                    message = self._pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._receive(message["data"])
            except (redis.RedisError, OSError, ValueError) as exc:
                if self._stopping.is_set():
                    return
                log.warning("events: Redis connection lost (%s); retrying", exc)
                self._stopping.wait(RETRY_S)

    def _receive(self, data) -> None:
        try:
            message = json.loads(data)
            job_id = message["job"]
        except (ValueError, KeyError, TypeError):
            return
        if message.get("o") == self._origin:
            return
        with self._live_lock:
            if message.get("p") and message.get("progress"):
                self._live[job_id] = message["progress"]
                self._live.move_to_end(job_id)
                while len(self._live) > MAX_LIVE:
                    self._live.popitem(last=False)
            elif not message.get("p"):
                self._live.pop(job_id, None)
        super().notify(job_id, bool(message.get("p")))
