"""Live sessions in studio mode: the API processes take frames, Celery workers (other processes,
other machines) render them. Same contract as `live.LiveSessions` (personal mode).

Everything a session is lives in Redis, so every API process and every worker sees it:
- `s:{id}`  the session (owner, operation, model, params with the seed fixed at creation); its
  TTL is the idle timeout, renewed by every frame and while one renders, so expiry is Redis's.
- `w:{id}`  the id of the session's waiting frame (at most one); `r:{id}` the running one (a
  marker with a short TTL, renewed while it renders: one worker at a time renders a session).
- `f:{frame}` a frame's inputs (pixels) and params, short-lived; `res:{frame}` its answer, a
  list the API request waits on with BLPOP.
- `o:{owner}` and `all`: sorted sets of open sessions by expiry time (the per-owner limits).

A frame replaces the waiting one atomically (a script); the replaced one is answered
`superseded` at once. Each frame sends a ticket (Celery task `aiedit.live`) to a worker holding
the model if one is idle, else to the shared queue, interleaved with job tickets. A worker
taking a ticket takes the waiting frame unless another worker renders the session (then that
one hands the frame on when it finishes, with a ticket to its own queue)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from aiedit.errors import OperationError
from aiedit.jobs.live import (
    LIVE_IDLE_S,
    FrameTimeout,
    SessionClosed,
    Superseded,
    render_frame,
)
from aiedit.ops.base import ImageOutput, Region, registry

if TYPE_CHECKING:
    from aiedit.engines.catalog import ModelEntry
    from aiedit.jobs.live import Frame
    from aiedit.jobs.queue_celery import CeleryQueue
    from aiedit.jobs.runner import JobRunner

log = logging.getLogger(__name__)
PREFIX = "aiedit:live:"
RUNNING_TTL_S = 30  # a worker killed mid-frame leaves its session free again after this
CHECK_EVERY_S = 0.2  # a rendering frame asks Redis at most this often if its session is open
RESULT_TTL_S = 120
POLL_S = 2.0  # one BLPOP at most this long (below the client's socket timeout)

# KEYS session, waiting, all, owner; ARGV frame, session id, idle s, waiting ttl
_SUBMIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local expiry = tonumber(redis.call('TIME')[1]) + tonumber(ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], expiry, ARGV[2])
redis.call('ZADD', KEYS[4], expiry, ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[3])
local old = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
return {1, old or ''}
"""
# KEYS session, waiting, running; ARGV running ttl
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
if redis.call('EXISTS', KEYS[3]) == 1 then return '' end
local frame = redis.call('GET', KEYS[2])
if not frame then return '' end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], frame, 'EX', ARGV[1])
return frame
"""
# KEYS running, waiting, session; ARGV frame
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('EXISTS', KEYS[3]) * redis.call('EXISTS', KEYS[2])
"""
# KEYS session, all, owner, running; ARGV session id, idle s, running ttl
_TOUCH = """
if redis.call('EXPIRE', KEYS[1], ARGV[2]) == 0 then return 0 end
local expiry = tonumber(redis.call('TIME')[1]) + tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
redis.call('ZADD', KEYS[3], expiry, ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[3])
return 1
"""
# KEYS waiting; ARGV frame
_WITHDRAW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
# KEYS session, waiting, all, owner; ARGV session id
_CLOSE = """
local existed = redis.call('DEL', KEYS[1])
local waiting = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return {existed, waiting or ''}
"""
# KEYS a sorted set of sessions by expiry
_COUNT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. redis.call('TIME')[1])
return redis.call('ZCARD', KEYS[1])
"""


def _key(kind: str, name: str) -> str:
    return f"{PREFIX}{kind}:{name}"


ALL = PREFIX + "all"


@dataclass
class RedisLiveSession:
    id: str
    owner: str
    operation: str
    entry: ModelEntry
    params: dict


class RedisLiveSessions:
    """The studio's live sessions, as the API processes and the workers see them."""

    available = True

    def __init__(self, runner: JobRunner, queue: CeleryQueue, client: redis.Redis,
                 idle_s: float = LIVE_IDLE_S):
        self._runner = runner
        self._queue = queue
        self._redis = client
        self._idle_s = int(idle_s)
        self._scripts = {name: client.register_script(text) for name, text in (
            ("submit", _SUBMIT), ("take", _TAKE), ("release", _RELEASE), ("touch", _TOUCH),
            ("withdraw", _WITHDRAW), ("close", _CLOSE), ("count", _COUNT))}

    # --- sessions (API processes) --------------------------------------------------------------

    def count(self, owner: str | None = None) -> int:
        key = ALL if owner is None else _key("o", owner)
        return int(self._scripts["count"](keys=[key]))

    def open(self, owner: str, operation: str, entry: ModelEntry, params: dict
             ) -> RedisLiveSession:
        import random

        params = dict(params)
        if params.get("seed") is None:  # one seed for the session: unchanged input, same frame
            params["seed"] = random.randrange(2**32)
        session = RedisLiveSession(uuid.uuid4().hex, owner, operation, entry, params)
        key = _key("s", session.id)
        expiry = time.time() + self._idle_s
        pipe = self._redis.pipeline()
        pipe.hset(key, mapping={"owner": owner, "operation": operation, "model": entry.id,
                                "params": json.dumps(params)})
        pipe.expire(key, self._idle_s)
        pipe.zadd(ALL, {session.id: expiry})
        pipe.zadd(_key("o", owner), {session.id: expiry})
        pipe.expire(_key("o", owner), self._idle_s)
        pipe.execute()
        # load the model ahead on a worker, so the first frame is fast
        self._queue.send_live_ticket(session.id, self._queue.route_model(entry.id), warm=True)
        log.info("live session opened", extra={"session": session.id, "owner": owner,
                                               "operation": operation, "model": entry.id})
        return session

    def get(self, session_id: str) -> RedisLiveSession | None:
        if not session_id.isalnum() or len(session_id) > 64:
            return None
        fields = self._redis.hgetall(_key("s", session_id))
        if not fields:
            return None
        entry = self._runner.catalog.get(fields[b"model"].decode())
        if entry is None:
            return None
        return RedisLiveSession(session_id, fields[b"owner"].decode(),
                                fields[b"operation"].decode(), entry,
                                json.loads(fields[b"params"]))

    def update_params(self, session: RedisLiveSession, params: dict) -> None:
        """Later frames of the session keep a frame's changes (prompt, strength, ...)."""
        session.params = params
        key = _key("s", session.id)
        pipe = self._redis.pipeline()
        pipe.exists(key)
        pipe.hset(key, "params", json.dumps(params))
        exists, _ = pipe.execute()
        if not exists:  # closed meanwhile: do not leave a session without an owner behind
            self._redis.delete(key)

    def owned_by(self, owners) -> list[str]:
        found = []
        for owner in owners:
            found += [m.decode() for m in self._redis.zrange(_key("o", owner), 0, -1)]
        return found

    def close(self, session_id: str, why: str = "deleted") -> bool:
        """End a session: its waiting frame is answered at once, its running frame stops at
        its next step (the worker sees the session gone)."""
        owner = self._redis.hget(_key("s", session_id), "owner")
        keys = [_key("s", session_id), _key("w", session_id), ALL,
                _key("o", owner.decode() if owner else "-")]
        existed, waiting = self._scripts["close"](keys=keys, args=[session_id])
        if waiting:
            self._answer(waiting.decode(), {"error": "closed", "why": why})
        if existed:
            log.info("live session closed", extra={"session": session_id, "why": why})
        return bool(existed)

    def close_all(self) -> None:
        """An API process stopping leaves the studio's sessions to the others."""

    def running(self) -> int:
        """Frames running or waiting in all sessions (for tests and the admin view)."""
        return sum(1 for kind in ("w", "r") for _ in self._redis.scan_iter(_key(kind, "*")))

    # --- frames (API processes) ----------------------------------------------------------------

    def submit(self, session: RedisLiveSession, frame: Frame, timeout: float) -> ImageOutput:
        """Hand `frame` to the workers and wait for its image; raises Superseded,
        SessionClosed, FrameTimeout or the operation's own OperationError."""
        import numpy as np

        frame_id = uuid.uuid4().hex
        meta = {"params": frame.raw_params if frame.raw_params is not None else frame.params,
                "region": [frame.region.x, frame.region.y, frame.region.width,
                           frame.region.height],
                "inputs": {name: {"dtype": a.dtype.str, "shape": list(a.shape)}
                           for name, a in frame.inputs.items()}}
        fields = {"meta": json.dumps(meta)}
        fields.update({f"in:{name}": np.ascontiguousarray(a).tobytes()
                       for name, a in frame.inputs.items()})
        keep = int(timeout * 2) + 30
        pipe = self._redis.pipeline()
        pipe.hset(_key("f", frame_id), mapping=fields)
        pipe.expire(_key("f", frame_id), keep)
        pipe.execute()
        sid = session.id
        is_open, replaced = self._scripts["submit"](
            keys=[_key("s", sid), _key("w", sid), ALL, _key("o", session.owner)],
            args=[frame_id, sid, self._idle_s, max(self._idle_s, keep)],
        )
        if not is_open:
            self._redis.delete(_key("f", frame_id))
            raise SessionClosed("deleted")
        if replaced:
            self._answer(replaced.decode(), {"error": "superseded"})
        self._queue.send_live_ticket(sid, self._queue.route_model(session.entry.id))
        answer = self._wait(frame_id, timeout)
        if answer is None:  # not taken in time: withdraw it, unless it started meanwhile
            if self._scripts["withdraw"](keys=[_key("w", sid)], args=[frame_id]):
                self._redis.delete(_key("f", frame_id))
                raise FrameTimeout()
            answer = self._wait(frame_id, timeout)  # it renders now: it stops soon or finishes
            if answer is None:
                raise FrameTimeout()
        return _output(answer)

    def _wait(self, frame_id: str, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        key = _key("res", frame_id)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            got = self._redis.blpop([key], timeout=min(POLL_S, max(left, 0.01)))
            if got is not None:
                self._redis.delete(key)
                return got[1]

    def _answer(self, frame_id: str, header: dict, body: bytes = b"") -> None:
        key = _key("res", frame_id)
        pipe = self._redis.pipeline()
        pipe.delete(_key("f", frame_id))
        pipe.rpush(key, json.dumps(header).encode() + b"\n" + body)
        pipe.expire(key, RESULT_TTL_S)
        pipe.execute()

    # --- frames (workers) ----------------------------------------------------------------------

    def work(self, session_id: str, device: str, own_queue: str, warm: bool = False) -> None:
        """A live ticket on a worker: render the session's waiting frame, if it is free to."""
        fields = self._redis.hgetall(_key("s", session_id))
        if not fields:
            return
        entry = self._runner.catalog.get(fields[b"model"].decode())
        if entry is None:
            return
        keys = [_key("s", session_id), _key("w", session_id), _key("r", session_id)]
        if warm:
            if not self._redis.exists(keys[1]):
                self._warm(session_id, entry, device)
            return
        frame_id = self._scripts["take"](keys=keys, args=[RUNNING_TTL_S])
        if not frame_id:
            return  # nothing waits, or another worker renders this session and hands it on
        frame_id = frame_id.decode()
        try:
            self._render(session_id, fields, entry, device, frame_id)
        finally:
            waiting = self._scripts["release"](
                keys=[_key("r", session_id), _key("w", session_id), _key("s", session_id)],
                args=[frame_id])
            if waiting:  # a frame arrived meanwhile: its turn comes after the tickets waiting
                self._queue.send_live_ticket(session_id, own_queue)

    def _warm(self, session_id: str, entry: ModelEntry, device: str) -> None:
        try:
            self._runner.cache.get(entry, device)
        except Exception as exc:  # the first frame shows the failure
            log.info("live session %s: model %s not loaded ahead (%s)", session_id, entry.id,
                     type(exc).__name__)

    def _render(self, session_id: str, fields: dict, entry: ModelEntry, device: str,
                frame_id: str) -> None:
        import numpy as np

        stored = self._redis.hgetall(_key("f", frame_id))
        self._redis.delete(_key("f", frame_id))
        if not stored:
            self._answer(frame_id, {"error": "closed", "why": "its frame expired"})
            return
        meta = json.loads(stored[b"meta"])
        inputs = {name: np.frombuffer(stored[f"in:{name}".encode()], np.dtype(spec["dtype"]))
                  .reshape(spec["shape"]) for name, spec in meta["inputs"].items()}
        operation = fields[b"operation"].decode()
        touch = [_key("s", session_id), ALL, _key("o", fields[b"owner"].decode()),
                 _key("r", session_id)]
        checked = {"at": 0.0, "closed": False}

        def closed() -> bool:
            now = time.monotonic()
            if not checked["closed"] and now - checked["at"] >= CHECK_EVERY_S:
                checked["at"] = now
                try:
                    checked["closed"] = not self._scripts["touch"](
                        keys=touch, args=[session_id, self._idle_s, RUNNING_TTL_S])
                except redis.RedisError:
                    pass  # the next step asks again
            return checked["closed"]

        try:
            if closed():
                raise SessionClosed("deleted")
            params = registry()[operation].params().load(meta["params"])
            output = render_frame(self._runner, operation, entry, device, params, inputs,
                                  Region(*meta["region"]), closed, f"live session {session_id}")
        except SessionClosed as exc:
            self._answer(frame_id, {"error": "closed", "why": str(exc)})
        except OperationError as exc:
            self._answer(frame_id, {"error": "operation", "code": exc.code,
                                    "message": exc.message})
        except Exception:
            log.exception("live session %s: a frame failed", session_id)
            self._answer(frame_id, {"error": "operation", "code": "internal_error",
                                    "message": f"the frame failed unexpectedly (live session "
                                               f"{session_id}); the server log has the details"})
        else:
            pixels = np.ascontiguousarray(output.pixels)
            self._answer(frame_id, {"dtype": pixels.dtype.str, "shape": list(pixels.shape),
                                    "dx": output.dx, "dy": output.dy, "seed": output.seed},
                         pixels.tobytes())
            # the session's idle time counts from the end of its last frame
            self._scripts["touch"](keys=touch, args=[session_id, self._idle_s, RUNNING_TTL_S])


def _output(answer: bytes) -> ImageOutput:
    import numpy as np

    head, _, body = answer.partition(b"\n")
    header = json.loads(head)
    error = header.get("error")
    if error == "superseded":
        raise Superseded()
    if error == "closed":
        raise SessionClosed(header.get("why") or "deleted")
    if error:
        raise OperationError(header["code"], header["message"])
    pixels = np.frombuffer(body, np.dtype(header["dtype"])).reshape(header["shape"])
    return ImageOutput(pixels=pixels, dx=header["dx"], dy=header["dy"], seed=header["seed"])
