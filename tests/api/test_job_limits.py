"""Bounded resources at submission: inputs stored as sent (no blown-up copies on disk), queue
caps, a free-space floor, an Idempotency-Key reused for another request, upload slots, a pixel
cap for classic models, and 16-bit decoding without float64 copies."""

from __future__ import annotations

import io
import json
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from aiedit.api import job_request
from aiedit.app import create_app, services_of
from aiedit.auth.keys import create_key
from aiedit.auth.users import create_user, set_limits
from aiedit.imaging.codec import decode_image
from aiedit.store.models import Job
from tests.helpers import noise_image, png_bytes, submit, wait_finished

UPSCALE = {"model": "classic-lanczos", "params": {"scale": 2}}
IMAGE = png_bytes(noise_image(16, 16))


@pytest.fixture
def make_app(config):
    """Apps with the test config changed by `settings`; workers stopped unless `start`."""
    apps = []

    def build(start=False, **settings):
        app = create_app(replace(config, **settings), start=start)
        apps.append(app)
        return app

    yield build
    for app in apps:
        services_of(app).stop()


def _stored_bytes(app) -> int:
    root = services_of(app).blobs.root
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _rows(app) -> int:
    with services_of(app).db.session() as s:
        return s.query(Job).count()


def test_a_small_png_of_a_huge_flat_image_stays_small_on_disk(make_app):
    app = make_app(max_classic_pixels=0)
    buf = io.BytesIO()
    Image.new("1", (8192, 8192)).save(buf, "PNG", optimize=True)  # black, 8 KB
    data = buf.getvalue()
    assert len(data) < 16 << 10
    resp = submit(app.test_client(), "upscale", {"image": data}, model="classic-lanczos",
                  params={"scale": 1})
    assert resp.status_code == 202, resp.get_json()
    assert _stored_bytes(app) == len(data), "stored as sent, not as 256 MiB of pixels"
    job_id = resp.get_json()["id"]
    with services_of(app).db.session() as s:
        ref = s.get(Job, job_id).inputs["image"]
    assert ref["blob"].endswith(".png")
    pixels = services_of(app).runner._load_input(job_id, "image", ref)
    assert pixels.shape == (8192, 8192, 4) and not pixels[..., :3].any()
    assert (pixels[..., 3] == 255).all()


def test_raw_uploads_are_stored_as_their_bytes_and_jobs_run_from_them(make_app):
    app = make_app(start=True)
    client = app.test_client()
    image = noise_image(40, 30, seed=4)
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 10:30] = 255
    data = {
        "request": json.dumps({
            "operation": "inpaint", "model": "classic-telea",
            "raw": {"image": {"width": 40, "height": 30}, "mask": {"width": 40, "height": 30}},
        }),
        "image": (io.BytesIO(image.tobytes()), "image.rgba"),
        "mask": (io.BytesIO(mask.tobytes()), "mask.gray"),
    }
    resp = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    folder = services_of(app).blobs.job_dir(job_id)
    assert (folder / "image.rgba8").read_bytes() == image.tobytes()
    assert (folder / "mask.gray8").read_bytes() == mask.tobytes()
    job = wait_finished(client, job_id)
    assert job["state"] == "succeeded", job
    result = client.get(f"/v1/jobs/{job_id}/results/0?format=rgba").data
    out = np.frombuffer(result, np.uint8).reshape(30, 40, 4)
    assert (out[mask == 0] == image[mask == 0]).all(), "outside the mask nothing changed"
    assert (out[mask == 255] != image[mask == 255]).any(), "inside it was filled"


def test_queued_jobs_are_capped_per_owner_and_in_total(make_app):
    app = make_app(max_queued_per_owner=2, max_queued=3)
    services = services_of(app)
    _, alice = create_key(services.db, "alice")
    _, bob = create_key(services.db, "bob")
    client = app.test_client()

    def post(key):
        return submit(client, "upscale", {"image": IMAGE}, headers={
            "Authorization": f"Bearer {key}"}, **UPSCALE)

    assert post(alice).status_code == 202 and post(alice).status_code == 202
    refused = post(alice)
    assert refused.status_code == 429
    body = refused.get_json()
    assert body["code"] == "queue_full"
    assert "2 jobs queued" in body["message"] and "max_queued_per_owner = 2" in body["message"]
    assert refused.headers["Retry-After"]
    assert post(bob).status_code == 202
    total = post(bob)
    assert total.status_code == 429 and "3 jobs queued" in total.get_json()["message"]
    assert "max_queued = 3" in total.get_json()["message"]
    assert _rows(app) == 3


def _race(app, key: str, n: int = 20) -> list:
    """`n` submissions by one caller, all let go at once from their own threads."""
    start = threading.Barrier(n)

    def post(_):
        client = app.test_client()
        start.wait()
        return submit(client, "upscale", {"image": IMAGE},
                      headers={"Authorization": f"Bearer {key}"}, **UPSCALE)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(post, range(n)))


@pytest.mark.parametrize("limit", ["max_queued_per_owner", "max_queued", "user_max_queued"])
def test_concurrent_submissions_at_a_cap_store_only_what_fits(make_app, limit):
    """The caps are counted in the transaction that inserts the job, one submission at a time:
    20 at once against a cap of 3 store exactly 3 (checked before the insert, in a transaction
    of its own, several of them saw room for one more). Twenty upload slots: all twenty are in
    the view at once, as they would be across the processes of a studio deployment."""
    if limit == "user_max_queued":
        app = make_app(upload_slots=20)
        services = services_of(app)
        create_user(services.db, "carol")
        set_limits(services.db, "carol", max_queued=3)
        _, key = create_key(services.db, "carol-laptop", user="carol")
        code = "limit_max_queued"
    else:
        app = make_app(upload_slots=20, **{limit: 3})
        _, key = create_key(services_of(app).db, "alice")
        code = "queue_full"
    answers = _race(app, key)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [202] * 3 + [429] * 17, statuses
    assert {r.get_json()["code"] for r in answers if r.status_code == 429} == {code}
    assert all(r.headers["Retry-After"] for r in answers if r.status_code == 429)
    assert _rows(app) == 3
    stored = {p.name for p in services_of(app).blobs.root.iterdir() if any(p.rglob("*.png"))}
    assert stored == {r.get_json()["id"] for r in answers if r.status_code == 202}, (
        "the refused jobs' inputs are removed")


def test_new_jobs_are_refused_with_507_below_the_free_space_floor(make_app):
    app = make_app(min_free_bytes=1 << 60)
    resp = submit(app.test_client(), "upscale", {"image": IMAGE}, **UPSCALE)
    assert resp.status_code == 507
    body = resp.get_json()
    assert body["code"] == "insufficient_storage"
    assert "min_free_bytes" in body["message"] and "free" in body["message"]
    assert _rows(app) == 0 and _stored_bytes(app) == 0
    assert app.test_client().get("/v1/jobs").status_code == 200, "reads still work"


def test_an_idempotency_key_reused_for_another_request_is_refused(make_app):
    client = make_app().test_client()
    headers = {"Idempotency-Key": "k-1"}
    first = submit(client, "upscale", {"image": IMAGE}, headers=headers, **UPSCALE)
    assert first.status_code == 202
    again = submit(client, "upscale", {"image": IMAGE}, headers=headers, **UPSCALE)
    assert again.status_code == 202 and again.get_json()["id"] == first.get_json()["id"]

    other_params = submit(client, "upscale", {"image": IMAGE}, headers=headers,
                          model="classic-lanczos", params={"scale": 3})
    assert other_params.status_code == 422
    assert other_params.get_json()["code"] == "idempotency_key_reused"

    same_size_other_pixels = png_bytes(noise_image(16, 16, seed=99))
    other_file = submit(client, "upscale", {"image": same_size_other_pixels}, headers=headers,
                        **UPSCALE)
    assert other_file.status_code == 422
    assert other_file.get_json()["code"] == "idempotency_key_reused"
    assert len(client.get("/v1/jobs").get_json()) == 1


def test_uploads_wait_for_a_free_slot_then_get_503(make_app):
    app = make_app(upload_slots=1, upload_slot_wait_s=0.2)
    client = app.test_client()
    with app.app_context():
        slots = job_request._slots()
    assert slots.acquire(timeout=1)  # another upload is being stored
    try:
        busy = submit(client, "upscale", {"image": IMAGE}, **UPSCALE)
    finally:
        slots.release()
    assert busy.status_code == 503
    assert busy.get_json()["code"] == "server_busy" and busy.headers["Retry-After"]
    assert client.get("/v1/jobs").status_code == 200, "only submissions take a slot"
    assert submit(client, "upscale", {"image": IMAGE}, **UPSCALE).status_code == 202


def test_classic_models_are_capped_in_pixels_before_queueing(make_app):
    app = make_app(max_classic_pixels=64 * 64)
    client = app.test_client()
    big = submit(client, "upscale", {"image": png_bytes(noise_image(65, 64))}, **UPSCALE)
    assert big.status_code == 422
    body = big.get_json()
    assert body["code"] == "too_large_for_classic"
    assert "max_classic_pixels" in body["message"] and "65x64" in body["message"]
    assert _rows(app) == 0
    fits = submit(client, "upscale", {"image": png_bytes(noise_image(64, 64))}, **UPSCALE)
    assert fits.status_code == 202


def test_16_bit_images_are_decoded_without_float64_copies():
    side = 2048
    ramp = (np.arange(side * side, dtype=np.uint32) % 65536).astype(np.uint16)
    img = Image.frombytes("I;16", (side, side), ramp.tobytes())
    buf = io.BytesIO()
    img.save(buf, "PNG")
    tracemalloc.start()
    try:
        out = decode_image("image", buf.getvalue(), 1 << 30, 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = np.clip(np.rint(ramp / 257.0), 0, 255).astype(np.uint8).reshape(side, side)
    assert (out[..., 0] == expected).all() and (out[..., 3] == 255).all()
    float64_copy = side * side * 8
    assert peak < out.nbytes + float64_copy, f"peak {peak / 2**20:.0f} MiB"
