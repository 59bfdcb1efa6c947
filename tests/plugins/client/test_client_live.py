"""The client against a live `aiedit serve`."""

import sqlite3
import threading
import time

import pytest
from aiedit_client import (
    AieditError,
    AuthFailed,
    Client,
    ConnectionFailed,
    JobCanceled,
    Mask,
    Pixels,
    Region,
    describe_progress,
)

pytestmark = pytest.mark.e2e


def flat(width, height, rgba=(90, 140, 200, 255)):
    return Pixels(width, height, bytes(rgba) * (width * height))


def square_mask(width, height, x0, y0, x1, y1):
    return Mask(width, height, bytes(255 if x0 <= x < x1 and y0 <= y < y1 else 0
                                     for y in range(height) for x in range(width)))


def test_operations_describe_what_the_server_offers(live_server):
    client = Client(live_server.url)
    assert client.health()["status"] == "ok"
    ops = {op["id"]: op for op in client.operations()}
    assert {"inpaint", "upscale", "restore"} <= set(ops)
    assert ops["inpaint"]["inputs"]["image"] == "required"
    assert ops["inpaint"]["inputs"]["mask"] == "optional"  # without one it refines the image
    assert client.operations() is client.operations()


def test_inpaint_round_trip_keeps_region_offset(live_server):
    client = Client(live_server.url)
    seen = []
    job = client.submit("inpaint", image=flat(40, 30), mask=square_mask(40, 30, 10, 5, 20, 15),
                        region=Region(5, 7, 40, 30), model="classic-telea")
    job = client.wait(job["id"], on_progress=lambda j: seen.append(describe_progress(j)))
    assert job["state"] == "succeeded" and seen[-1] == "Done"
    (result,) = client.results(job)
    assert (result.x, result.y, result.width, result.height) == (5, 7, 40, 30)
    pixels = client.fetch_pixels(result)
    assert (pixels.width, pixels.height) == (40, 30)
    assert pixels.data[:4] == bytes((90, 140, 200, 255))
    assert client.fetch_bytes(result)[:8] == b"\x89PNG\r\n\x1a\n"


def test_upscale_result_is_bigger_and_offset_scaled(live_server):
    client = Client(live_server.url)
    job = client.wait(client.submit("upscale", image=flat(16, 12), region=Region(3, 4, 16, 12),
                                    model="classic-lanczos", params={"scale": 2})["id"])
    (result,) = client.results(job)
    assert (result.x, result.y, result.width, result.height) == (6, 8, 32, 24)


def test_server_4xx_message_reaches_the_user(live_server):
    client = Client(live_server.url)
    with pytest.raises(AieditError) as caught:
        client.submit("inpaint", image=flat(8, 8))
    assert caught.value.status == 422 or 400 <= caught.value.status < 500
    assert "mask" in str(caught.value)


def test_unknown_operation_is_named(live_server):
    with pytest.raises(AieditError, match="no operation 'paint'"):
        Client(live_server.url).operation("paint")


def test_idempotency_key_returns_the_same_job(live_server):
    client = Client(live_server.url)
    args = {"image": flat(8, 8), "model": "classic-denoise", "idempotency_key": "same-one"}
    first = client.submit("restore", **args)
    second = client.submit("restore", **args)
    assert first["id"] == second["id"]


def test_unreachable_server_says_how_to_start_it(unused_url):
    url = unused_url
    with pytest.raises(ConnectionFailed) as caught:
        Client(url).health()
    assert str(caught.value) == (f"Cannot reach the aiedit server at {url} — "
                                 "start it with `aiedit serve`")


def test_wrong_key_is_rejected_with_a_hint(server_factory, create_key, tmp_path):
    key = create_key(tmp_path / "data")
    own_server = server_factory(data_dir=tmp_path / "data")
    assert Client(own_server.url, key).operations()
    with pytest.raises(AuthFailed) as caught:
        Client(own_server.url, "aiedit_wrong").operations()
    assert str(caught.value) == f"API key rejected by {own_server.url} — check the key in Settings"


def test_wait_resumes_after_the_server_restarts(server_factory, tmp_path):
    first = server_factory(data_dir=tmp_path / "data")
    client = Client(first.url)
    job = client.submit("restore", image=flat(8, 8), model="classic-denoise")
    first.stop()
    outcome = {}
    waiter = threading.Thread(target=lambda: outcome.update(job=client.wait(job["id"])))
    waiter.start()
    time.sleep(2.0)
    server_factory(data_dir=tmp_path / "data", port=first.port)
    waiter.join(timeout=90)
    assert outcome["job"]["state"] == "succeeded"
    assert outcome["job"]["id"] == job["id"]


def test_should_cancel_cancels_a_running_job_on_the_server(tiny_server):
    """A tiny diffusion model with 150 steps at 128² runs for seconds: the cancel lands
    mid-run."""
    client = Client(tiny_server.url)
    job = client.submit("generate", model="tiny-sdxl", region=Region(0, 0, 128, 128),
                        params={"prompt": "a slow cat", "steps": 150, "width": 128,
                                "height": 128, "seed": 1})
    seen = []

    def running_for_a_while():
        return any(j["state"] == "running" and j["progress"]["step"] >= 1 for j in seen)

    with pytest.raises(JobCanceled):
        client.wait(job["id"], on_progress=seen.append, should_cancel=running_for_a_while)
    final = client.job(job["id"])
    for _ in range(30):  # a running job stops at its next step
        if final["state"] not in ("queued", "running"):
            break
        final = client.job(job["id"], wait=2)
    assert final["state"] == "canceled", final
    assert final["progress"]["step"] < 150 and final["results"] == []
    # the server recorded the DELETE (only a cancel request sets this column)
    with sqlite3.connect(tiny_server.data_dir / "aiedit.sqlite3") as db:
        (requested,) = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?",
                                  (job["id"],)).fetchone()
    assert requested == 1
