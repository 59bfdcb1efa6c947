"""Fixtures for the proof suite: real `aiedit serve` processes and plain HTTP helpers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import LiveServer

FINISHED = ("succeeded", "failed", "canceled")
PROOF_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if PROOF_DIR in Path(item.fspath).parents:
            item.add_marker(pytest.mark.proof)


@pytest.fixture(scope="module")
def proof_server(tmp_path_factory):
    """One server per module, with its own data directory (so leftovers can be checked)."""
    server = LiveServer(tmp_path_factory.mktemp("proof") / "data").start()
    yield server
    server.stop()


def post_job(url: str, request: dict | str, files: dict | None = None, headers=None, **kw):
    """POST /v1/jobs as the plugins do: a `request` text part plus file parts."""
    text = request if isinstance(request, str) else json.dumps(request)
    parts = {"request": (None, text)}
    for name, value in (files or {}).items():
        filename, data = value if isinstance(value, tuple) else (f"{name}.png", value)
        parts[name] = (filename, data, "application/octet-stream")
    return requests.post(f"{url}/v1/jobs", files=parts, headers=headers or {}, timeout=60, **kw)


def wait_job(url: str, job_id: str, timeout: float = 60.0, headers=None) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = requests.get(
            f"{url}/v1/jobs/{job_id}", params={"wait": 5}, headers=headers or {}, timeout=30
        ).json()
        if job["state"] in FINISHED:
            return job
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def leftovers(data_dir: Path) -> list[str]:
    """Files under the data directory that belong to no job: anything in blobs/, temp files."""
    found = [str(p.relative_to(data_dir)) for p in (data_dir / "blobs").rglob("*")]
    found += [str(p.relative_to(data_dir)) for p in data_dir.rglob(".tmp*")]
    return found


def assert_error(resp, status: int | None = None, code: str | None = None) -> dict:
    """A 4xx JSON error that says what is wrong (or the 507 asked for: no space to store)."""
    assert 400 <= resp.status_code < 500 or resp.status_code == status == 507, (
        resp.status_code,
        resp.text[:500],
    )
    body = resp.json()
    assert body["status"] == resp.status_code, body
    assert len(body["message"]) > 15, body
    if status is not None:
        assert resp.status_code == status, body
    if code is not None:
        assert body["code"] == code, body
    return body
