"""Pushed job events (Server-Sent Events) and step previews, with a 20-step tiny diffusion job."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from aiedit.app import create_app, services_of
from aiedit.auth.keys import create_key
from aiedit.config import Config
from tests.fixtures.tiny_server import TINY_CATALOG
from tests.helpers import decode_png, submit, wait_finished

pytestmark = pytest.mark.ml
STEPS = 20


def read_events(resp, timeout: float = 120.0) -> list[tuple[str, dict, float]]:
    """(event name, data, arrival time) for every event until the stream ends; heartbeats and
    the retry line are checked and skipped."""
    events, buffer = [], b""
    deadline = time.monotonic() + timeout
    for chunk in resp.response:
        assert time.monotonic() < deadline, "the event stream did not end"
        buffer += chunk if isinstance(chunk, bytes) else chunk.encode()
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            lines = block.decode().split("\n")
            if lines[0].startswith(":") or lines[0].startswith("retry:"):
                continue
            name = lines[0].removeprefix("event: ")
            data = json.loads(lines[1].removeprefix("data: "))
            events.append((name, data, time.monotonic()))
    assert buffer == b""
    return events


def start_job(client, headers=None, steps=STEPS, model="tiny-sdxl"):
    resp = submit(
        client,
        "generate",
        headers=headers,
        model=model,
        params={"prompt": "a lighthouse", "seed": 3, "steps": steps},
        region={"x": 0, "y": 0, "width": 64, "height": 64},
    )
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["id"]


def test_event_stream_sends_progress_in_order_then_the_final_state_and_ends(dclient):
    job_id = start_job(dclient)
    resp = dclient.get(f"/v1/jobs/{job_id}/events")
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    events = read_events(resp)

    names = [name for name, _, _ in events]
    assert names[-1] == "state" and names.count("state") == 1
    final = events[-1][1]
    assert final["state"] == "succeeded" and final["id"] == job_id
    assert final["results"][0]["url"] == f"/v1/jobs/{job_id}/results/0"
    progress = [data for name, data, _ in events if name == "progress"]
    assert {"step", "total", "stage", "queue_position", "state"} <= set(progress[0])
    denoising = [p for p in progress if p["stage"] == "denoising"]
    steps = [p["step"] for p in denoising]
    assert len(steps) >= 3, steps  # several distinct steps were pushed as they happened
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert all(p["total"] == STEPS for p in denoising)
    assert all(p["queue_position"] == 0 for p in progress if p["state"] == "running")
    # the stream ended with the job: GET agrees it is finished
    assert dclient.get(f"/v1/jobs/{job_id}").get_json()["state"] == "succeeded"


@pytest.mark.parametrize("model", ["tiny-sdxl", "tiny-flux"])  # linear approximation, own VAE
def test_previews_appear_while_a_20_step_job_runs(dclient, model):
    job_id = start_job(dclient, model=model)
    events = read_events(dclient.get(f"/v1/jobs/{job_id}/events"))
    names = [name for name, _, _ in events]
    previews = [data for name, data, _ in events if name == "preview"]
    assert previews, names
    assert names.index("preview") < names.index("state")
    steps = [p["step"] for p in previews]
    assert steps == sorted(steps) and all(0 < s < STEPS for s in steps)
    assert previews[0]["url"] == f"/v1/jobs/{job_id}/preview"

    resp = dclient.get(f"/v1/jobs/{job_id}/preview")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    assert int(resp.headers["X-Preview-Step"]) == steps[-1]
    pixels = decode_png(resp.data)
    assert max(pixels.shape[:2]) <= 256 and pixels[..., 3].min() == 255
    assert pixels[..., :3].std() > 0  # decoded latents, not a blank picture


def test_unknown_jobs_have_no_events_and_no_preview(dclient):
    for tail in ("events", "preview"):
        resp = dclient.get(f"/v1/jobs/0123456789abcdef0123456789abcdef/{tail}")
        assert resp.status_code == 404 and resp.get_json()["code"] == "job_not_found"


def test_a_job_without_previews_answers_404_preview_not_available(dclient):
    # an upscale with a classic model makes no previews
    from tests.helpers import noise_image, png_bytes

    resp = submit(dclient, "upscale", {"image": png_bytes(noise_image(16, 16))},
                  model="classic-lanczos", params={"scale": 2})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    wait_finished(dclient, job_id)
    resp = dclient.get(f"/v1/jobs/{job_id}/preview")
    assert resp.status_code == 404
    body = resp.get_json()
    assert body["code"] == "preview_not_available" and job_id in body["message"]


@pytest.fixture
def keyed_app(tiny_hub, tmp_path):
    config = Config(data_dir=tmp_path / "data", testing=True, catalog_file=str(TINY_CATALOG),
                    devices=["cpu"], max_long_polls=2, max_long_polls_per_key=1)
    app = create_app(config)
    yield app
    services_of(app).stop()


def test_streams_are_the_owners_and_take_a_long_poll_slot_until_closed(keyed_app):
    client = keyed_app.test_client()
    db = services_of(keyed_app).db
    alice = {"Authorization": f"Bearer {create_key(db, 'alice')[1]}"}
    bob = {"Authorization": f"Bearer {create_key(db, 'bob')[1]}"}
    job_id = start_job(client, headers=alice, steps=40)

    for headers in (bob,):
        assert client.get(f"/v1/jobs/{job_id}/events", headers=headers).status_code == 404
        assert client.get(f"/v1/jobs/{job_id}/preview", headers=headers).status_code == 404

    first = client.get(f"/v1/jobs/{job_id}/events", headers=alice)
    assert first.status_code == 200
    second = client.get(f"/v1/jobs/{job_id}/events", headers=alice)
    assert second.status_code == 429 and second.get_json()["code"] == "too_many_long_polls"
    assert second.headers["Retry-After"]
    long_poll = client.get(f"/v1/jobs/{job_id}?wait=1", headers=alice)
    assert long_poll.status_code == 429  # streams and long-polls share the slots
    first.close()  # the client went away: the slot is free again
    again = client.get(f"/v1/jobs/{job_id}/events", headers=alice)
    assert again.status_code == 200
    events = read_events(again)
    assert events[-1][0] == "state" and events[-1][1]["state"] == "succeeded"
    assert np.isfinite(events[-1][1]["progress"]["fraction"])


def test_a_real_server_streams_events_as_they_happen_and_frees_the_slot_on_disconnect(
    tmp_path, tiny_hub
):
    """Through waitress: events are not held back in a buffer, and a client that goes away
    gives its long-poll slot back (here the only one) once the server writes to it."""
    import requests

    from tests.fixtures.tiny_server import tiny_env
    from tests.helpers import LiveServer

    env = {**tiny_env(tiny_hub), "AIEDIT_MAX_LONG_POLLS": "1"}
    server = LiveServer(tmp_path / "data", env=env).start(timeout=60)
    try:
        request = {"operation": "generate", "model": "tiny-sdxl",
                   "params": {"prompt": "a harbour", "seed": 1, "steps": 60},
                   "region": {"x": 0, "y": 0, "width": 64, "height": 64}}
        resp = requests.post(f"{server.url}/v1/jobs",
                             files={"request": (None, json.dumps(request))}, timeout=60)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        url = f"{server.url}/v1/jobs/{job_id}/events"
        first = requests.get(url, stream=True, timeout=60)
        assert first.status_code == 200
        assert first.headers["Content-Type"].startswith("text/event-stream")
        lines = first.iter_lines(decode_unicode=True)
        assert next(line for line in lines if line.startswith("event:")) == "event: progress"
        state = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=30).json()["state"]
        assert state != "succeeded"  # the first event came while the job was still going
        assert requests.get(url, timeout=30).status_code == 429  # the one slot is taken
        first.close()
        deadline = time.monotonic() + 30
        while True:
            second = requests.get(url, stream=True, timeout=120)
            if second.status_code == 200 or time.monotonic() > deadline:
                break
            second.close()
            time.sleep(0.2)
        assert second.status_code == 200  # the slot came back after the client left
        events = [line for line in second.iter_lines(decode_unicode=True) if line]
        assert events[-2] == "event: state"
        assert json.loads(events[-1].removeprefix("data: "))["state"] == "succeeded"
    finally:
        server.stop()


def test_a_quiet_stream_sends_heartbeats_and_ends_at_its_time_limit(dclient, dservices,
                                                                   monkeypatch):
    from aiedit.api import job_events

    monkeypatch.setattr(job_events, "HEARTBEAT_S", 0.0)  # a heartbeat whenever nothing was sent
    monkeypatch.setattr(dservices.config, "max_event_stream_s", 1.0)
    monkeypatch.setattr(job_events, "POLL_INTERVAL_S", 0.05)
    blocker = start_job(dclient, steps=150)  # holds the worker, so the next job stays queued
    job_id = start_job(dclient)
    started = time.monotonic()
    body = b"".join(
        c if isinstance(c, bytes) else c.encode()
        for c in dclient.get(f"/v1/jobs/{job_id}/events").response
    ).decode()
    assert time.monotonic() - started < 30
    assert body.startswith("retry: 2000\n\n")
    assert ": heartbeat\n\n" in body
    assert "event: state" not in body  # it ended at the limit; an EventSource reconnects
    assert '"state":"queued"' in body
    for job in (blocker, job_id):
        dclient.delete(f"/v1/jobs/{job}")
