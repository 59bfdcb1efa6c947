"""Everything the server holds about a user, as one zip: `account.json` (the user, their keys
without secrets, their credit account and support messages), `jobs.json` (every job still
retained: parameters, states, times, results), `ledger.json` (their credit history) and the
images still retained under `images/<job id>/` (uploads as they were sent, raw uploads and
results as PNG, videos as MP4).

The zip is made as it is sent (`stream_export`, one job's files at a time) or in memory
(`build_export`): no copy of the user's data is written anywhere but the server's own storage."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from aiedit.privacy import UnknownUser
from aiedit.store.db import as_utc
from aiedit.store.models import ApiKey, Job, SupportMessage, User

if TYPE_CHECKING:
    from aiedit.services import Services

FORMAT_VERSION = 1


def build_export(services: Services, user_id: str) -> bytes:
    """The zip (bytes) of user `user_id` (the user's name, `users.name`)."""
    return b"".join(stream_export(services, user_id))


def stream_export(services: Services, user_id: str) -> Iterator[bytes]:
    """The same zip in pieces, one job's files at a time, so a large export never sits in
    memory whole. UnknownUser is raised at once, before the first piece."""
    db = services.db
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise UnknownUser(f"no user {user_id!r}")
        keys = list(s.scalars(select(ApiKey).where(ApiKey.user == user_id)
                              .order_by(ApiKey.created_at)))
        jobs = list(s.scalars(select(Job).where(Job.owner == user_id)
                              .order_by(Job.created_at, Job.id)))
        messages = list(s.scalars(select(SupportMessage).where(SupportMessage.user == user_id)
                                  .order_by(SupportMessage.created_at)))
        account, ledger_rows = _credits(s, user_id)
    return _pieces(services, _account(user, keys, account, messages), jobs, ledger_rows)


def _pieces(services: Services, account: dict, jobs: list[Job], ledger_rows: list):
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("account.json", _json(account))
        described = []
        for job in jobs:
            described.append(_job(job, _images(services, job, zf)))
            yield sink.take()
        zf.writestr("jobs.json", _json(described))
        zf.writestr("ledger.json", _json(ledger_rows))
    yield sink.take()


class _Sink:
    """A write-only stream whose bytes are taken as they come (zipfile writes to an unseekable
    stream with data descriptors after each entry)."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _credits(session, user_id: str):
    from aiedit.billing import ledger

    account = ledger.account_of(session, user_id)
    if account is None:
        return None, []
    rows = list(reversed(ledger.entries(session, account.id)))  # oldest first
    return account, [ledger.entry_json(row) for row in rows]


def _account(user: User, keys: list[ApiKey], account, messages) -> dict:
    return {
        "format": FORMAT_VERSION,
        "user": {
            "name": user.name,
            "display_name": user.display_name,
            "email": user.email,
            "role": user.role,
            "created_at": _time(user.created_at),
            "age_confirmed_at": _time(user.age_confirmed_at),
            "analytics_opt_out": bool(user.analytics_opt_out),
            "limits": {"max_queued": user.max_queued, "daily_units": user.daily_units},
        },
        "credit_account": None if account is None else {
            "id": account.id,
            "plan": account.plan,
            "daily_credit_limit": account.daily_credit_limit,
            "suspended_at": _time(account.suspended_at),
            "suspended_reason": account.suspended_reason or "",
            "created_at": _time(account.created_at),
        },
        "api_keys": [
            {"id": k.id, "name": k.name, "role": k.role, "created_at": _time(k.created_at),
             "revoked_at": _time(k.revoked_at)}
            for k in keys
        ],
        "support_messages": [
            {"job_id": m.job_id, "message": m.message, "created_at": _time(m.created_at)}
            for m in messages
        ],
    }


def _job(job: Job, files: dict) -> dict:
    return {
        "id": job.id,
        "operation": job.operation,
        "model": job.model,
        "params": job.params,
        "region": job.region,
        "state": job.state,
        "error": job.error,
        "cost": job.cost,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "expires_at": _time(job.expires_at),
        "inputs": files["inputs"],
        "results": [
            {key: value for key, value in r.items() if key != "blob"}
            | {"file": files["results"].get(r["index"])}
            for r in job.results or []
        ],
    }


def _images(services: Services, job: Job, zf: zipfile.ZipFile) -> dict:
    """Write the job's retained files into the zip; {inputs: {name: file}, results: {n: file}}
    (a file the sweeper removed meanwhile is left out)."""
    blobs = services.blobs
    folder = f"images/{job.id}"
    inputs: dict = {}
    for name, ref in (job.inputs or {}).items():
        try:
            if isinstance(ref, str):  # stored as .npy by an earlier version
                data, ext = _png(blobs.get_array(job.id, ref)), "png"
            elif ref["kind"] == "raw":
                data, ext = _png(_raw_pixels(blobs.path(job.id, ref["blob"]), ref)), "png"
            else:
                data, ext = blobs.get_bytes(job.id, ref["blob"]), ref["kind"]
        except FileNotFoundError:
            continue
        path = f"{folder}/{name}.{ext}"
        zf.writestr(path, data, compress_type=zipfile.ZIP_STORED)
        inputs[name] = path
    results: dict = {}
    for result in job.results or []:
        index, blob = result["index"], result.get("blob")
        if not blob:
            continue
        try:
            if result["kind"] == "video":
                data, ext = blobs.get_bytes(job.id, blob), "mp4"
            else:
                data, ext = _png(blobs.get_array(job.id, blob)), "png"
        except FileNotFoundError:
            continue
        path = f"{folder}/result-{index}.{ext}"
        zf.writestr(path, data, compress_type=zipfile.ZIP_STORED)
        results[index] = path
    return {"inputs": inputs, "results": results}


def _raw_pixels(path, ref: dict) -> np.ndarray:
    from aiedit.imaging.codec import RAW_FORMATS

    fmt = ref.get("format") or ("rgba8" if ref["channels"] == 4 else "gray8")
    channels, dtype = RAW_FORMATS[fmt]
    shape = (ref["height"], ref["width"], channels) if channels > 1 else \
        (ref["height"], ref["width"])
    return np.fromfile(path, dtype=dtype).reshape(shape)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    from aiedit.imaging.codec import encode

    pixels = np.asarray(pixels)
    if pixels.ndim == 2:  # a mask
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels), "L").save(buffer, "PNG")
        return buffer.getvalue()
    return encode(np.ascontiguousarray(pixels), "png")


def _time(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
