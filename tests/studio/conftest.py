"""Studio-mode fixtures: one PostgreSQL cluster and one Redis for the session; each studio gets
a fresh database, its own data folder, API processes and workers."""

from __future__ import annotations

import json
import time

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.fixtures.studio import Studio
from tests.helpers import noise_image, png_bytes

pytestmark = pytest.mark.studio
FINISHED = ("succeeded", "failed", "canceled")


@pytest.fixture
def studio_factory(tmp_path, postgres, redis_server):
    made: list[Studio] = []

    def make(name: str = "studio", **env) -> Studio:
        studio = Studio(tmp_path / name, postgres, redis_server, extra_env=env)
        made.append(studio)
        return studio

    yield make
    for studio in made:
        studio.close()


def post_job(url, headers, operation="upscale", image=None, model="classic-lanczos",
             **params) -> requests.Response:
    image = image if image is not None else png_bytes(noise_image(32, 32))
    request = {"operation": operation, "model": model, "params": params}
    return requests.post(
        url + "/v1/jobs", data={"request": json.dumps(request)},
        files={"image": ("image.png", image)}, headers=headers, timeout=60,
    )


def get_job(url, headers, job_id, wait: float = 0) -> dict:
    resp = requests.get(f"{url}/v1/jobs/{job_id}", params={"wait": wait}, headers=headers,
                        timeout=wait + 30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_state(url, headers, job_id, states=FINISHED, timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = get_job(url, headers, job_id, wait=2)
        if job["state"] in states:
            return job
    raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {job}")


def job_row(studio: Studio, job_id: str) -> dict:
    engine = create_engine(studio.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT state, worker, attempts, started_at, owner FROM jobs WHERE id=:id"),
                {"id": job_id},
            ).mappings().one()
            return dict(row)
    finally:
        engine.dispose()


def started_times(studio: Studio) -> dict[str, tuple]:
    engine = create_engine(studio.database_url)
    try:
        with engine.connect() as conn:
            return {
                r.id: (r.owner, r.started_at, r.worker)
                for r in conn.execute(text("SELECT id, owner, started_at, worker FROM jobs"))
            }
    finally:
        engine.dispose()
