"""Client for the aiedit server, shared by the GIMP and Krita plug-ins.

Standard library only (editors bundle their own Python, nothing can be installed there),
Python 3.8+. No Qt, no Gimp: hosts adapt pixels to and from the plain types below.

    client = Client("http://127.0.0.1:8790", api_key="")
    job = client.submit("inpaint", image=pixels, mask=mask, region=region, params={...})
    job = client.wait(job["id"], on_progress=lambda j: print(describe_progress(j)),
                      on_preview=lambda preview: show(preview.png))
    for result in client.results(job):
        layer_pixels = client.fetch_pixels(result)

Deep colour: ``Pixels(w, h, data, depth=16)`` holds 16-bit RGBA (little-endian uint16).
``submit`` sends it as raw ``rgba16`` where the operation's ``input_formats`` (from
``GET /v1/operations``) lists it, else rounded to 8 bits; results of 16-bit jobs have
``Result.depth == 16`` and ``fetch_pixels`` returns them 16-bit.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "AieditError", "ConnectionFailed", "AuthFailed", "JobFailed", "JobCanceled", "CancelFailed",
    "Pixels", "Mask", "Region", "Result", "Preview", "Event", "Client", "JobJournal",
    "CancelWatchdog",
    "describe_progress", "grow_region", "crop_mask", "crop_pixels", "mask_into_alpha",
    "swap_red_blue", "encode_png", "decode_png", "DEFAULT_URL",
]

DEFAULT_URL = "http://127.0.0.1:8790"
USER_AGENT = "aiedit-client/0.1"
TERMINAL_STATES = ("succeeded", "failed", "canceled")
RETRY_WINDOW_S = 60.0


# ---------------------------------------------------------------- errors


class AieditError(Exception):
    """An error a person can act on: ``str(e)`` is a full sentence.

    ``code`` is the server's stable error code (or a client-side one such as
    ``connection_failed``), ``status`` the HTTP status when there was one.
    """

    def __init__(self, message: str, code: str = "error", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return self.message


class ConnectionFailed(AieditError):
    """The server could not be reached (refused, unknown host, dropped, timed out)."""


class AuthFailed(AieditError):
    """The server rejected the API key (HTTP 401)."""


class JobFailed(AieditError):
    """The job ended in state ``failed``; ``job`` holds its final JSON."""

    def __init__(self, message: str, code: str = "job_failed", job: dict | None = None):
        super().__init__(message, code)
        self.job = job or {}


class JobCanceled(AieditError):
    """The job was canceled (by ``should_cancel`` or by someone else)."""

    def __init__(self, message: str = "The job was canceled", job: dict | None = None):
        super().__init__(message, "canceled")
        self.job = job or {}


class CancelFailed(AieditError):
    """Canceling a job on the server failed: the job may still be running there. ``cause``
    is the error the cancel request met."""

    def __init__(self, job_id: str, cause: AieditError):
        super().__init__(
            f"Could not cancel job {job_id} on the server, it may still be running: {cause}",
            "cancel_failed", cause.status)
        self.job_id = job_id
        self.cause = cause


# ---------------------------------------------------------------- plain data


@dataclass
class Pixels:
    """RGBA pixels, row by row, sRGB, straight alpha. ``depth=8``: one byte a channel,
    ``len(data) == width * height * 4``; ``depth=16``: little-endian uint16 a channel,
    ``len(data) == width * height * 8``. 8 <-> 16 bits is ``v * 257`` / ``round(v / 257)``."""

    width: int
    height: int
    data: bytes
    depth: int = 8

    def __post_init__(self):
        if self.depth not in (8, 16):
            raise ValueError(f"pixels: depth must be 8 or 16, got {self.depth}")
        _check_size("pixels", self.data, self.width, self.height, self.bytes_per_pixel)

    @property
    def bytes_per_pixel(self) -> int:
        return 8 if self.depth == 16 else 4

    @property
    def format(self) -> str:
        """The contract's name of this pixel format: ``rgba8`` or ``rgba16``."""
        return "rgba16" if self.depth == 16 else "rgba8"

    def to_8bit(self) -> Pixels:
        """These pixels at 8 bits (rounded); 8-bit pixels are returned as they are."""
        if self.depth == 8:
            return self
        return Pixels(self.width, self.height, _round_16_to_8(self.data), 8)

    def to_16bit(self) -> Pixels:
        """These pixels at 16 bits (``v * 257``, exact); 16-bit pixels are returned as they are."""
        if self.depth == 16:
            return self
        wide = bytearray(len(self.data) * 2)
        wide[0::2] = self.data
        wide[1::2] = self.data
        return Pixels(self.width, self.height, bytes(wide), 16)


@dataclass
class Mask:
    """8-bit single-channel mask, ``255`` = change here, ``len(data) == width * height``."""

    width: int
    height: int
    data: bytes

    def __post_init__(self):
        _check_size("mask", self.data, self.width, self.height, 1)


@dataclass
class Region:
    """Where an image sits in the document, in document pixels."""

    x: int
    y: int
    width: int
    height: int

    def as_json(self) -> dict:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass
class Result:
    """One result of a finished job; ``x``/``y`` is its offset in document pixels."""

    index: int
    kind: str
    width: int
    height: int
    x: int
    y: int
    seed: int | None
    url: str
    depth: int = 8  # 16 for a result of a 16-bit image (see Pixels)


@dataclass
class Preview:
    """A step preview of a running job: a small PNG (at most 256 px a side) of ``step``."""

    step: int
    png: bytes

    def pixels(self) -> Pixels:
        """The preview decoded to 8-bit RGBA (pure Python: fine at preview sizes)."""
        return decode_png(self.png)


@dataclass
class Event:
    """One Server-Sent Event of ``GET /v1/jobs/{id}/events``: ``name`` is ``progress``,
    ``preview`` or ``state``; ``data`` its JSON."""

    name: str
    data: dict


def _check_size(what: str, data: bytes, width: int, height: int, channels: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"{what}: size must be positive, got {width}x{height}")
    if len(data) != width * height * channels:
        raise ValueError(
            f"{what}: {width}x{height}x{channels} needs {width * height * channels} bytes, "
            f"got {len(data)}"
        )


# ---------------------------------------------------------------- the client


class Client:
    """Talks to one aiedit server. Safe to use from a worker thread; ``cancel`` may be called
    from another thread while ``wait`` runs."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str = "", timeout: float = 30.0):
        self.url = _check_url(url)
        self.api_key = (api_key or "").strip()
        self.timeout = timeout
        self.retry_window_s = RETRY_WINDOW_S
        self._operations: list[dict] | None = None
        self._opener = _make_opener(self.url)

    # -- discovery

    def health(self) -> dict:
        """``GET /v1/health``: status, version, mode, auth_required, devices."""
        return self._json("GET", "/v1/health")

    def operations(self) -> list[dict]:
        """``GET /v1/operations``, cached for the life of this client."""
        if self._operations is None:
            answer = self._json("GET", "/v1/operations")
            self._operations = answer.get("operations", answer) if isinstance(answer, dict) \
                else answer
        return self._operations

    def operation(self, operation_id: str) -> dict:
        """The description of one operation; a clear error if the server lacks it."""
        for op in self.operations():
            if op.get("id") == operation_id:
                return op
        names = ", ".join(sorted(op.get("id", "?") for op in self.operations()))
        raise AieditError(
            f"The aiedit server at {self.url} has no operation '{operation_id}' "
            f"(it offers: {names})", "unknown_operation")

    def models(self) -> list[dict]:
        """``GET /v1/models``: the model catalog."""
        answer = self._json("GET", "/v1/models")
        return answer.get("models", answer) if isinstance(answer, dict) else answer

    # -- jobs

    def submit(self, operation: str, image: Pixels | None = None, mask: Mask | None = None,
               reference: Pixels | None = None, region: Region | None = None, model: str = "",
               params: dict | None = None, idempotency_key: str | None = None) -> dict:
        """Submit a job (``POST /v1/jobs``) and return the job JSON.

        Pixels go as raw RGBA (declared in the request's ``raw`` field). A 16-bit ``image`` goes
        as raw ``rgba16`` when the operation's ``input_formats`` lists it, else rounded to 8
        bits (a reference is always 8-bit); when the raw upload would be over the server's
        ``max_upload_bytes`` the image goes as a PNG (16-bit for rgba16) instead. All-raw files
        are the body of ``POST /v1/jobs/raw`` (the request JSON in its ``Aiedit-Request``
        header), which the server stores without multipart parsing. A dropped
        connection is retried with the same ``Idempotency-Key``, so the server never runs the
        job twice.
        """
        request: dict = {"operation": operation, "params": dict(params or {})}
        if model:
            request["model"] = model
        if region is not None:
            request["region"] = region.as_json()
        if image is not None and image.depth == 16 and not self.takes_16bit(operation):
            image = image.to_8bit()
        if reference is not None:
            reference = reference.to_8bit()
        parts = [(n, v) for n, v in (("image", image), ("reference", reference), ("mask", mask))
                 if v is not None]
        limit = self._upload_limit(operation) if image is not None else 0
        encode_image = bool(limit) and sum(len(v.data) for _, v in parts) > limit
        files, raw = [], {}
        for name, value in parts:
            if name == "image" and encode_image:
                files.append((name, encode_png(value, level=1)))
                continue
            files.append((name, value.data))
            raw[name] = {"width": value.width, "height": value.height}
            if isinstance(value, Pixels) and value.depth == 16:
                raw[name]["format"] = "rgba16"
        if raw:
            request["raw"] = raw
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        path = "/v1/jobs"
        if raw and len(raw) == len(files):
            # all raw: the pixels are the body, back to back (image, reference, mask)
            path += "/raw"
            body = b"".join(data for _, data in files)
            headers.update({"Content-Type": "application/octet-stream",
                            "Aiedit-Request": json.dumps(request)})
        else:
            body, headers["Content-Type"] = _multipart(
                [("request", json.dumps(request).encode())], files)
        return self._retrying(lambda: self._json("POST", path, body, headers))

    def input_formats(self, operation: str) -> list:
        """The pixel formats ``operation``'s image may come in (``GET /v1/operations``):
        ``["rgba8"]`` or ``["rgba8", "rgba16"]`` (``["rgba8"]`` from servers that predate
        deep colour)."""
        return list(self.operation(operation).get("input_formats") or ["rgba8"])

    def takes_16bit(self, operation: str) -> bool:
        """True when ``operation`` keeps 16-bit pixels (and then returns 16-bit results): read
        the layer at 16 bits for it; for other operations 8 bits are all it uses."""
        return "rgba16" in self.input_formats(operation)

    def _upload_limit(self, operation: str) -> int:
        """Bytes of files that fit in one upload, with room for the multipart framing."""
        try:
            limits = self.operation(operation).get("limits") or {}
        except AieditError:
            return 0
        total = int(limits.get("max_upload_bytes") or 0)
        return max(0, total - (1 << 20)) if total else 0

    def job(self, job_id: str, wait: float = 0.0) -> dict:
        """``GET /v1/jobs/{id}``; with ``wait`` > 0 a long poll that returns on any change."""
        path = f"/v1/jobs/{_quote(job_id)}"
        if wait > 0:
            path += f"?wait={wait:g}"
        return self._json("GET", path, timeout=self.timeout + wait)

    def wait(self, job_id: str, on_progress: Callable[[dict], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, poll_s: float = 20.0,
             on_preview: Callable[[Preview], None] | None = None,
             use_events: bool = True) -> dict:
        """Follow the job until it ends and return its final JSON.

        Follows the job's event stream (``GET /v1/jobs/{id}/events``) where the server has one,
        and long-polls (``GET /v1/jobs/{id}?wait=``) otherwise or when the stream breaks off
        (``use_events=False``: long-polls only). Calls ``on_progress(job)`` whenever state or
        progress changes (``job`` has at least ``id``, ``state``, ``queue_position`` and
        ``progress``; the last call gets the full final job), and ``on_preview(preview)`` with
        each new step preview (``Preview``: step and PNG) of a diffusion job; both run in the
        calling thread. When ``should_cancel()`` returns True the job is canceled on the server
        and ``JobCanceled`` raised (``CancelFailed`` when the server could not be told); it is
        asked at least every 0.25 s (long-polls: every second).
        Dropped connections and 5xx answers are retried with backoff for up to
        ``retry_window_s`` (60 s) before ``ConnectionFailed`` is raised. A failed job raises
        ``JobFailed`` with the server's reason.
        """
        seen = {"progress": None, "preview": None}
        if use_events and not (should_cancel and should_cancel()):
            job = self._wait_events(job_id, on_progress, should_cancel, on_preview, seen)
            if job is not None:
                return _final(job)
        wait_s = min(poll_s, 1.0) if should_cancel else poll_s
        next_preview = 0.0
        while True:
            if should_cancel and should_cancel():
                job = self._cancel_or_say_why(job_id)
                raise JobCanceled(job=job)
            job = self._retrying(lambda: self.job(job_id, wait=wait_s))
            key = _progress_key(job)
            if key != seen["progress"] and on_progress:
                on_progress(job)
            seen["progress"] = key
            if job.get("state") in TERMINAL_STATES:
                return _final(job)
            if on_preview and job.get("state") == "running" and time.monotonic() >= next_preview:
                next_preview = time.monotonic() + 1.0
                self._offer_preview(job_id, on_preview, seen)

    def events(self, job_id: str):
        """The job's Server-Sent Events (``GET /v1/jobs/{id}/events``) as ``Event`` objects, as
        they arrive, until the stream ends (after the final ``state`` event, or when the server
        ends it after ``max_event_stream_s``). Heartbeats are skipped. Raises ``AieditError``
        when the server refuses the stream (404 on servers without it, 429 when its long-poll
        slots are taken)."""
        stream = _EventStream(self, job_id)
        try:
            yield from stream
        finally:
            stream.close()

    def preview(self, job_id: str):
        """The job's latest step preview (``GET /v1/jobs/{id}/preview``), or None while there
        is none."""
        try:
            _, headers, body = self._request("GET", f"/v1/jobs/{_quote(job_id)}/preview",
                                             headers={"Accept": "image/png"})
        except AieditError as error:
            if error.code == "preview_not_available":
                return None
            raise
        return Preview(int(headers.get("X-Preview-Step") or 0), body)

    def _offer_preview(self, job_id: str, on_preview, seen: dict) -> None:
        try:
            preview = self.preview(job_id)
        except AieditError:
            return  # a preview is a nicety: never let it end the wait
        if preview is not None and preview.step != seen["preview"]:
            seen["preview"] = preview.step
            on_preview(preview)

    def _wait_events(self, job_id, on_progress, should_cancel, on_preview, seen):
        """Follow the event stream; the final job, or None when the stream is unavailable or
        broke off (the caller long-polls from there)."""
        try:
            stream = _EventStream(self, job_id)
        except AieditError as error:
            if error.status in (404, 405, 406, 429, 501) and error.code != "job_not_found":
                return None
            if isinstance(error, ConnectionFailed):
                return None
            raise
        events: queue.Queue = queue.Queue()
        reader = threading.Thread(target=stream.pump, args=(events,), daemon=True,
                                  name=f"aiedit-events-{job_id}")
        reader.start()
        try:
            while True:
                if should_cancel and should_cancel():
                    stream.close()
                    job = self._cancel_or_say_why(job_id)
                    raise JobCanceled(job=job)
                try:
                    event = events.get(timeout=0.25)
                except queue.Empty:
                    continue
                if event is None:  # ended or broke off without the final state
                    return None
                if event.name == "progress":
                    data = event.data
                    job = {"id": job_id, "state": data.get("state"),
                           "queue_position": data.get("queue_position"),
                           "progress": {k: data.get(k) for k in
                                        ("step", "total", "fraction", "stage", "eta_s")}}
                    key = _progress_key(job)
                    if key != seen["progress"] and on_progress:
                        on_progress(job)
                    seen["progress"] = key
                elif event.name == "preview" and on_preview:
                    self._offer_preview(job_id, on_preview, seen)
                elif event.name == "state":
                    job = event.data
                    if job.get("state") == "deleted":
                        raise AieditError(f"Job {job_id} was deleted on the server before it "
                                          "finished", "job_deleted")
                    if on_progress and _progress_key(job) != seen["progress"]:
                        on_progress(job)
                    seen["progress"] = _progress_key(job)
                    return job
        finally:
            stream.close()

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job; a job that has finished meanwhile is kept."""
        self._request("DELETE", f"/v1/jobs/{_quote(job_id)}?cancel_only=true")

    def delete(self, job_id: str) -> None:
        """``DELETE /v1/jobs/{id}``: cancels a queued or running job; deletes a finished one."""
        self._request("DELETE", f"/v1/jobs/{_quote(job_id)}")

    def cancel_if_unfinished(self, job_id: str) -> dict | None:
        """Cancel the job only while it is queued or running (a finished job is kept)."""
        job = self.job(job_id)
        if job.get("state") in TERMINAL_STATES:
            return job
        self.cancel(job_id)
        return job

    def results(self, job: dict) -> list[Result]:
        """The job's results as ``Result`` objects, in index order."""
        out = []
        for r in job.get("results") or []:
            offset = r.get("offset") or {}
            out.append(Result(
                index=int(r.get("index", len(out))), kind=r.get("kind", "image"),
                width=int(r.get("width", 0)), height=int(r.get("height", 0)),
                x=int(offset.get("x", 0)), y=int(offset.get("y", 0)),
                seed=r.get("seed"), url=r["url"], depth=int(r.get("depth") or 8)))
        return sorted(out, key=lambda r: r.index)

    def fetch_pixels(self, result: Result, depth: int | None = None) -> Pixels:
        """Download an image result as raw RGBA: at the result's own depth (``depth=None``:
        16-bit for a 16-bit result, ``?format=rgba16``), or at the ``depth`` asked (8: the
        server rounds a 16-bit result; 16: an 8-bit result is widened exactly). PNG is decoded
        if the server answers with PNG instead."""
        depth = result.depth if depth is None else depth
        if depth not in (8, 16):
            raise ValueError(f"depth must be 8 or 16, got {depth}")
        deep = depth == 16 and result.depth == 16
        url = _with_query(result.url, format="rgba16" if deep else "rgba")
        status, headers, body = self._retrying(lambda: self._request("GET", url))
        if "png" in (headers.get("Content-Type") or ""):
            pixels = decode_png(body, depth=16 if deep else 8)
        else:
            width = int(headers.get("X-Image-Width") or result.width)
            height = int(headers.get("X-Image-Height") or result.height)
            pixels = Pixels(width, height, body, 16 if deep else 8)
        return pixels.to_16bit() if depth == 16 else pixels

    def fetch_bytes(self, result: Result) -> bytes:
        """Download a result in its original format (PNG for images, MP4 for video)."""
        return self._retrying(lambda: self._request("GET", result.url))[2]

    # -- plumbing

    def _cancel_or_say_why(self, job_id: str) -> dict | None:
        try:
            return self.cancel_if_unfinished(job_id)
        except AieditError as error:
            raise CancelFailed(job_id, error) from None

    def _retrying(self, call: Callable):
        """Run ``call`` again after dropped connections, 5xx or a refused long-poll, for up to
        retry_window_s."""
        deadline = None
        delay = 0.5
        while True:
            try:
                return call()
            except AieditError as error:
                if not _retryable(error):
                    raise
                now = time.monotonic()
                deadline = deadline or now + self.retry_window_s
                if now >= deadline:
                    raise
                time.sleep(min(delay, max(0.0, deadline - now)) * random.uniform(0.8, 1.0))
                delay = min(delay * 2, 5.0)

    def _json(self, method: str, path: str, body: bytes | None = None,
              headers: dict | None = None, timeout: float | None = None):
        status, _, data = self._request(method, path, body, headers, timeout)
        if not data:
            return {}
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:
            raise AieditError(
                f"The server at {self.url} did not answer like an aiedit server "
                f"(HTTP {status}, not JSON) — check the server URL in Settings",
                "not_aiedit", status) from None

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict | None = None, timeout: float | None = None):
        url = self._own_url(path)
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("User-Agent", USER_AGENT)
        req.add_header("Accept", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        if self.api_key:
            # never copied onto a redirected request (and _NoAuthRedirects strips it again)
            req.add_unredirected_header("Authorization", f"Bearer {self.api_key}")
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            raise self._http_error(error) from None
        except (OSError, http.client.HTTPException) as error:
            raise self._connection_error(error) from None

    def _own_url(self, path: str) -> str:
        """``path`` (``/v1/...``) on this server, or an absolute URL (a result's ``url``) that
        must be on this server's origin: the API key is never sent anywhere else."""
        if path.startswith("/") and not path.startswith("//"):
            return self.url + path
        if _origin(path) is not None and _origin(path) == _origin(self.url):
            return path
        raise AieditError(
            f"Refusing to fetch {path} — it is not on the aiedit server at {self.url} "
            "(the server answered with an address on another origin)", "foreign_origin")

    def _http_error(self, error: urllib.error.HTTPError) -> AieditError:
        try:
            payload = json.loads(error.read().decode("utf-8"))
        except (ValueError, OSError):
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        code = payload.get("code") or f"http_{error.code}"
        if error.code == 401:
            return AuthFailed(f"API key rejected by {self.url} — check the key in Settings",
                              code, 401)
        message = payload.get("message") or (
            f"The aiedit server at {self.url} answered HTTP {error.code} {error.reason}")
        details = _field_details(payload.get("errors"))
        if details and not all(leaf in message for leaf in _leaf_messages(payload["errors"])):
            message = f"{message} ({details})"
        return AieditError(message, code, error.code)

    def _connection_error(self, error: BaseException) -> ConnectionFailed:
        reason = getattr(error, "reason", error)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return ConnectionFailed(
                f"The aiedit server at {self.url} did not answer within {self.timeout:g} s — "
                "check that `aiedit serve` is running and not overloaded", "timeout")
        return ConnectionFailed(
            f"Cannot reach the aiedit server at {self.url} — start it with `aiedit serve`",
            "connection_failed")


class _EventStream:
    """One open ``GET /v1/jobs/{id}/events`` response, read line by line."""

    def __init__(self, client: Client, job_id: str):
        req = urllib.request.Request(client._own_url(f"/v1/jobs/{_quote(job_id)}/events"))
        req.add_header("User-Agent", USER_AGENT)
        req.add_header("Accept", "text/event-stream")
        if client.api_key:
            req.add_unredirected_header("Authorization", f"Bearer {client.api_key}")
        try:
            # heartbeats come at least every 15 s: a read that waits longer means trouble
            self._response = client._opener.open(req, timeout=max(client.timeout, 20.0))
        except urllib.error.HTTPError as error:
            raise client._http_error(error) from None
        except (OSError, http.client.HTTPException) as error:
            raise client._connection_error(error) from None
        kind = self._response.headers.get("Content-Type") or ""
        if not kind.startswith("text/event-stream"):
            self.close()
            raise AieditError(f"The server at {client.url} has no event stream for jobs "
                              f"(it answered {kind or 'no content type'})", "no_event_stream",
                              406)
        self._closed = False

    def __iter__(self):
        name, data = "message", []
        while True:
            try:
                line = self._response.readline()
            except (OSError, ValueError, AttributeError, http.client.HTTPException):
                return  # closed under us, or the connection dropped
            if not line:
                return
            line = line.decode("utf-8").rstrip("\r\n")
            if not line:
                if data:
                    try:
                        yield Event(name, json.loads("\n".join(data)))
                    except ValueError:
                        pass  # not JSON: not an event this client knows
                name, data = "message", []
            elif line.startswith(":"):
                continue  # heartbeat
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)

    def pump(self, into: queue.Queue) -> None:
        """Put every event into ``into``, then None (run in a thread of its own)."""
        try:
            for event in self:
                into.put(event)
        finally:
            into.put(None)

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            self._response.close()
        except Exception:  # noqa: BLE001 - closing a response a reader thread is in
            pass


def _retryable(error: AieditError) -> bool:
    """Worth another try: the connection dropped, the server is briefly unavailable, or it
    holds as many long-polls open as it allows (429 too_many_long_polls)."""
    return (isinstance(error, ConnectionFailed) or (error.status or 0) in (502, 503, 504)
            or error.code == "too_many_long_polls")


def _final(job: dict) -> dict:
    state = job.get("state")
    if state == "failed":
        err = job.get("error") or {}
        raise JobFailed(err.get("message") or "The job failed on the server",
                        err.get("code") or "job_failed", job)
    if state == "canceled":
        raise JobCanceled(job=job)
    return job


def _progress_key(job: dict):
    progress = job.get("progress") or {}
    return (job.get("state"), job.get("queue_position"), progress.get("step"),
            progress.get("total"), progress.get("stage"))


def _field_details(errors) -> str:
    if not isinstance(errors, dict):
        return ""
    parts = []
    for field, messages in errors.items():
        if isinstance(messages, dict):
            inner = _field_details(messages)
            parts.append(f"{field}: {inner}" if inner else field)
        elif isinstance(messages, (list, tuple)):
            parts.append(f"{field}: {'; '.join(str(m) for m in messages)}")
        else:
            parts.append(f"{field}: {messages}")
    return "; ".join(parts)


def _leaf_messages(errors) -> list:
    if isinstance(errors, dict):
        return [m for value in errors.values() for m in _leaf_messages(value)]
    if isinstance(errors, (list, tuple)):
        return [m for value in errors for m in _leaf_messages(value)]
    return [str(errors)]


def _check_url(url: str) -> str:
    url = (url or DEFAULT_URL).strip().rstrip("/")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise AieditError(
            f"Server URL '{url}' is not valid — it should look like {DEFAULT_URL}", "bad_url")
    return url


def _origin(url: str):
    """(scheme, host, port) of an absolute http(s) URL, or None."""
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError:
        return None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    return (parsed.scheme, parsed.hostname.lower(),
            port or (443 if parsed.scheme == "https" else 80))


class _NoAuthRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects without the credentials: urllib's default handler copies every
    header of the original request onto the redirected one, Authorization included, even
    to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            for name in list(new.headers):
                if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                    del new.headers[name]
            for name in list(new.unredirected_hdrs):
                if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                    del new.unredirected_hdrs[name]
        return new


def _make_opener(url: str):
    host = urllib.parse.urlsplit(url).hostname or ""
    handlers = [_NoAuthRedirects()]
    if host in ("127.0.0.1", "localhost", "::1"):
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _quote(text: str) -> str:
    return urllib.parse.quote(str(text), safe="")


def _with_query(url: str, **query) -> str:
    joiner = "&" if "?" in url else "?"
    return url + joiner + urllib.parse.urlencode(query)


def _multipart(fields: list, files: list) -> tuple:
    boundary = "aiedit-" + uuid.uuid4().hex
    chunks = []
    for name, value in fields:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: application/json\r\n\r\n".encode())
        chunks.extend([value, b"\r\n"])
    for name, data in files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}.rgba"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
        chunks.extend([data, b"\r\n"])
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------- progress text


def describe_progress(job: dict) -> str:
    """A short line for a progress bar: "Queued (2 ahead)", "Denoising 5/20 — 12 s left"."""
    state = job.get("state")
    if state == "queued":
        ahead = job.get("queue_position") or 0
        return f"Queued ({ahead} ahead)" if ahead else "Queued (next)"
    if state == "succeeded":
        return "Done"
    if state == "failed":
        return "Failed: " + ((job.get("error") or {}).get("message") or "unknown reason")
    if state == "canceled":
        return "Canceled"
    progress = job.get("progress") or {}
    stage = (progress.get("stage") or "working").replace("_", " ")
    text = stage[:1].upper() + stage[1:]
    step, total = progress.get("step"), progress.get("total")
    if total:
        text += f" {step or 0}/{total}"
    eta = progress.get("eta_s")
    if eta is not None and eta > 0:
        text += f" — {_duration(eta)} left"
    return text


def progress_fraction(job: dict) -> float:
    """0..1 for a progress bar (0 while queued, 1 when done)."""
    if job.get("state") == "succeeded":
        return 1.0
    progress = job.get("progress") or {}
    if progress.get("fraction") is not None:
        return max(0.0, min(1.0, float(progress["fraction"])))
    step, total = progress.get("step"), progress.get("total")
    return max(0.0, min(1.0, step / total)) if step and total else 0.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{max(seconds, 1)} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


# ---------------------------------------------------------------- regions, masks, pixels


def grow_region(x1: int, y1: int, x2: int, y2: int, margin: int, width: int,
                height: int) -> Region:
    """Selection bounds (x2/y2 exclusive) grown by ``margin`` on each side, clamped to the
    ``width`` x ``height`` image."""
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty bounds ({x1}, {y1})-({x2}, {y2})")
    margin = max(0, int(margin))
    left, top = max(0, x1 - margin), max(0, y1 - margin)
    right, bottom = min(width, x2 + margin), min(height, y2 + margin)
    if right <= left or bottom <= top:
        raise ValueError(f"bounds ({x1}, {y1})-({x2}, {y2}) lie outside the {width}x{height} image")
    return Region(left, top, right - left, bottom - top)


def crop_pixels(pixels: Pixels, region: Region) -> Pixels:
    """The part of ``pixels`` inside ``region`` (coordinates relative to ``pixels``)."""
    return Pixels(region.width, region.height,
                  _crop(pixels.data, pixels.width, pixels.bytes_per_pixel, region), pixels.depth)


def crop_mask(mask: Mask, region: Region) -> Mask:
    """The part of ``mask`` inside ``region`` (coordinates relative to ``mask``)."""
    return Mask(region.width, region.height, _crop(mask.data, mask.width, 1, region))


def _crop(data: bytes, width: int, channels: int, region: Region) -> bytes:
    stride = width * channels
    start = region.x * channels
    row = region.width * channels
    return b"".join(
        data[(region.y + y) * stride + start:(region.y + y) * stride + start + row]
        for y in range(region.height))


def mask_into_alpha(pixels: Pixels, mask: Mask) -> Pixels:
    """Multiply the mask into the alpha channel (for hosts without working layer masks)."""
    if (pixels.width, pixels.height) != (mask.width, mask.height):
        raise ValueError(f"mask {mask.width}x{mask.height} does not match "
                         f"pixels {pixels.width}x{pixels.height}")
    out = bytearray(pixels.data)
    if pixels.depth == 16:
        alphas = memoryview(pixels.data).cast("H")[3::4] if sys.byteorder == "little" else [
            out[i] | out[i + 1] << 8 for i in range(6, len(out), 8)]
        scaled = [(a * m + 127) // 255 for a, m in zip(alphas, mask.data)]
        out[6::8] = bytes(v & 255 for v in scaled)
        out[7::8] = bytes(v >> 8 for v in scaled)
    else:
        out[3::4] = bytes((a * m + 127) // 255 for a, m in zip(out[3::4], mask.data))
    return Pixels(pixels.width, pixels.height, bytes(out), pixels.depth)


def swap_red_blue(data: bytes, depth: int = 8) -> bytes:
    """BGRA <-> RGBA (the same swap both ways), 8 or 16 bits a channel."""
    out = bytearray(data)
    if depth == 16:
        out[0::8], out[4::8] = out[4::8], out[0::8]
        out[1::8], out[5::8] = out[5::8], out[1::8]
    else:
        out[0::4], out[2::4] = out[2::4], out[0::4]
    return bytes(out)


def _round_16_to_8(data: bytes, chunk: int = 1 << 16) -> bytes:
    """Little-endian uint16 samples -> uint8 by round(v / 257), without a per-sample Python
    loop: each sample is widened to a 32-bit lane of one big integer, and
    floor((v + 128) / 257) == (y - (y >> 8)) >> 8 with y = v + 128 is computed on all lanes at
    once (no lane overflows into the next)."""
    count = len(data) // 2
    out = bytearray(count)
    view = memoryview(data)
    lanes = None
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        if lanes != size:
            lanes = size
            add = int.from_bytes(b"\x80\x00\x00\x00" * size, "little")
            low = int.from_bytes(b"\xff\xff\x00\x00" * size, "little")
            wide = bytearray(size * 4)
        part = view[start * 2:(start + size) * 2]
        wide[0::4] = part[0::2]
        wide[1::4] = part[1::2]
        y = int.from_bytes(wide, "little") + add
        out[start:start + size] = ((y - ((y >> 8) & low)) >> 8).to_bytes(size * 4, "little")[0::4]
    return bytes(out)


def is_opaque_mask(mask: Mask) -> bool:
    """True when every pixel of the mask is 255 (the mask changes nothing)."""
    return mask.data.count(255) == len(mask.data)


# ---------------------------------------------------------------- PNG


def encode_png(image: Pixels | Mask, level: int = 6) -> bytes:
    """A PNG of RGBA pixels (16-bit for 16-bit pixels) or of a grayscale mask (no
    filtering, zlib ``level``)."""
    channels, color_type = (4, 6) if isinstance(image, Pixels) else (1, 0)
    depth = getattr(image, "depth", 8)
    data = image.data
    if depth == 16:  # PNG samples are big-endian
        swapped = bytearray(len(data))
        swapped[0::2], swapped[1::2] = data[1::2], data[0::2]
        data = bytes(swapped)
    stride = image.width * channels * depth // 8
    rows = b"".join(b"\x00" + data[y * stride:(y + 1) * stride] for y in range(image.height))
    header = struct.pack(">IIBBBBB", image.width, image.height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows, level)) + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def decode_png(data: bytes, depth: int = 8) -> Pixels:
    """Decode a non-interlaced PNG (gray, RGB, palette, gray+alpha, RGBA; 8 or 16 bit) to RGBA
    at ``depth`` (8: 16-bit files rounded; 16: 8-bit files widened).

    Pure Python and therefore slow for big images; prefer ``?format=rgba`` downloads.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AieditError("The result is not a PNG image", "bad_png")
    pos, idat, palette, trns, header = 8, [], b"", b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            trns = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise AieditError("The PNG has no header", "bad_png")
    want = depth
    if want not in (8, 16):
        raise ValueError(f"depth must be 8 or 16, got {want}")
    width, height, depth, color_type, _, _, interlace = header
    supported = depth == 8 or (depth == 16 and color_type != 3)
    if interlace or not supported:
        raise AieditError(f"Unsupported PNG (depth {depth}, type {color_type}, "
                          f"interlace {interlace})", "bad_png")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bpp = channels * depth // 8
    raw = _unfilter(zlib.decompress(b"".join(idat)), width * bpp, height, bpp)
    if depth == 16:  # big-endian samples -> little-endian, each channel as 8-bit plane pairs
        low, high = raw[1::2], raw[0::2]
        rgba_low = _to_rgba(low, color_type, palette, b"")
        rgba_high = _to_rgba(high, color_type, palette, b"")
        wide = bytearray(len(rgba_low) * 2)
        wide[0::2], wide[1::2] = rgba_low, rgba_high
        pixels = Pixels(width, height, bytes(wide), 16)
    else:
        pixels = Pixels(width, height, _to_rgba(raw, color_type, palette, trns))
    return pixels.to_8bit() if want == 8 else pixels.to_16bit()


def _unfilter(data: bytes, stride: int, height: int, bpp: int) -> bytes:
    out = bytearray()
    prev = bytearray(stride)
    pos = 0
    for _ in range(height):
        kind, line = data[pos], bytearray(data[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return bytes(out)


def _to_rgba(raw: bytes, color_type: int, palette: bytes, trns: bytes) -> bytes:
    """Samples of one byte each -> RGBA bytes (16-bit files: once for the high bytes, once for
    the low ones; opaque is 0xFF in both)."""
    n = len(raw) // {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    out = bytearray(n * 4)
    if color_type == 6:
        return bytes(raw)
    if color_type == 2:
        for c in range(3):
            out[c::4] = raw[c::3]
        out[3::4] = b"\xff" * n
    elif color_type in (0, 4):
        step = 1 if color_type == 0 else 2
        gray = raw[0::step]
        out[0::4] = out[1::4] = out[2::4] = gray
        out[3::4] = raw[1::2] if color_type == 4 else b"\xff" * n
    else:
        alpha = trns + b"\xff" * (256 - len(trns))
        lut = [palette[i * 3:i * 3 + 3] + alpha[i:i + 1] for i in range(len(palette) // 3)]
        return b"".join(lut[i] for i in raw)
    return bytes(out)


# ---------------------------------------------------------------- surviving the host


class JobJournal:
    """A small JSON file of submitted jobs whose results were not yet inserted.

    Editors may end a plug-in abruptly (GIMP's progress Cancel kills the process); the next run
    reads the journal and offers the results of jobs that finished meanwhile.
    """

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()

    def entries(self) -> list[dict]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return []
        return [e for e in data if isinstance(e, dict) and e.get("job_id")] \
            if isinstance(data, list) else []

    def add(self, job_id: str, **info) -> None:
        with self._lock:
            entries = [e for e in self.entries() if e["job_id"] != job_id]
            entries.append(dict(info, job_id=job_id, added_at=time.time()))
            self._write(entries)

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._write([e for e in self.entries() if e["job_id"] != job_id])

    def _write(self, entries: list) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(entries, f, indent=1)
        os.replace(tmp, self.path)


class CancelWatchdog:
    """A helper process that cancels a job on the server if this process dies first.

    It runs in its own session (so a host killing the plug-in's process group spares it) and
    waits for this process's end on a pipe. ``done()`` tells it the job needs no cancelling.
    The API key travels through the pipe, never on a command line.
    """

    def __init__(self, client: Client, job_id: str, python: str | None = None):
        import subprocess

        kwargs = {"start_new_session": True} if os.name != "nt" else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
            | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
        self._proc = subprocess.Popen(
            [python or _python_executable(), os.path.abspath(__file__), "watchdog"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            **kwargs)
        order = {"url": client.url, "api_key": client.api_key, "job_id": job_id}
        self._proc.stdin.write((json.dumps(order) + "\n").encode())
        self._proc.stdin.flush()

    def done(self) -> None:
        """The job ended or was handled: let the watchdog exit without cancelling."""
        try:
            self._proc.stdin.write(b"done\n")
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - a stuck watchdog must not break the host
            self._proc.kill()


def _python_executable() -> str:
    exe = sys.executable or "python3"
    base = os.path.basename(exe).lower()
    if base.startswith("pythonw"):
        return exe
    if "python" not in base:
        return "python3"
    return exe


def _watchdog_main() -> int:
    order = json.loads(sys.stdin.readline())
    if sys.stdin.readline().strip() == "done":
        return 0
    try:
        Client(order["url"], order.get("api_key", "")).cancel_if_unfinished(order["job_id"])
    except AieditError:
        return 1
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["watchdog"]:
    sys.exit(_watchdog_main())
