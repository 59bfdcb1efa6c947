"""POST /v1/jobs/raw: the raw files as the request body (the request JSON in a header), streamed
into the job's folder and synced before the 202, checked as strictly as multipart."""

import io
import json

import numpy as np

from tests.helpers import box_mask, decode_png, noise_image, submit, wait_finished

W, H = 40, 30
RAW = {"image": {"width": W, "height": H}, "mask": {"width": W, "height": H}}


def post_raw(client, body: bytes, request: dict | None, headers=None, **kwargs):
    sent = dict(headers or {})
    if request is not None:
        sent["Aiedit-Request"] = json.dumps(request)
    return client.post("/v1/jobs/raw", data=body, headers=sent,
                       content_type="application/octet-stream", **kwargs)


def job_folders(app) -> list[str]:
    from aiedit.app import services_of

    return services_of(app).blobs.job_ids()


def test_a_raw_body_job_stores_the_bytes_as_sent_and_matches_multipart(client, app):
    image, mask = noise_image(W, H), box_mask(W, H, (10, 10, 20, 20))
    resp = post_raw(client, image.tobytes() + mask.tobytes(), {"operation": "inpaint", "raw": RAW})
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"])
    assert job["state"] == "succeeded", job["error"]

    from aiedit.app import services_of

    blobs = services_of(app).blobs
    assert blobs.path(job["id"], "image.rgba8").read_bytes() == image.tobytes()
    assert blobs.path(job["id"], "mask.gray8").read_bytes() == mask.tobytes()
    via_body = decode_png(client.get(job["results"][0]["url"]).data)

    multipart = submit(client, "inpaint", {"image": image.tobytes(), "mask": mask.tobytes()},
                       raw=RAW)
    other = wait_finished(client, multipart.get_json()["id"])
    assert np.array_equal(decode_png(client.get(other["results"][0]["url"]).data), via_body)


def test_a_body_that_is_not_the_declared_pixels_is_refused_before_anything_is_stored(client,
                                                                                       app):
    image, mask = noise_image(W, H), box_mask(W, H, (10, 10, 20, 20))
    resp = post_raw(client, image.tobytes() + mask.tobytes()[:-1],
                    {"operation": "inpaint", "raw": RAW})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["code"] == "raw_size_mismatch"
    assert f"image {W}x{H} rgba8 ({W * H * 4} bytes) + mask {W}x{H} gray8" in body["message"]
    assert job_folders(app) == []
    assert client.get("/v1/jobs").get_json() == []


def test_a_raw_body_needs_its_request_header_and_a_raw_declaration(client, app):
    image = noise_image(W, H).tobytes()
    resp = post_raw(client, image, None)
    assert (resp.status_code, resp.get_json()["code"]) == (422, "missing_request")
    resp = post_raw(client, image, {"operation": "upscale", "model": "classic-lanczos"})
    assert (resp.status_code, resp.get_json()["code"]) == (422, "invalid_request")
    assert "raw" in resp.get_json()["message"]
    resp = post_raw(client, image, {"operation": "no-such-op", "raw": RAW})
    assert (resp.status_code, resp.get_json()["code"]) == (422, "unknown_operation")
    assert job_folders(app) == []


def test_a_refusal_after_the_body_was_stored_leaves_no_files(client, app):
    """The mask's size is checked against the image once both are read: the stored body goes."""
    image, mask = noise_image(W, H), box_mask(20, 10, (2, 2, 5, 5))
    raw = {"image": {"width": W, "height": H}, "mask": {"width": 20, "height": 10}}
    resp = post_raw(client, image.tobytes() + mask.tobytes(), {"operation": "inpaint", "raw": raw})
    assert (resp.status_code, resp.get_json()["code"]) == (422, "mask_size_mismatch")
    assert job_folders(app) == []


def test_a_body_cut_short_is_refused_and_leaves_no_files(client, app):
    whole = noise_image(W, H).tobytes()
    resp = client.post(
        "/v1/jobs/raw", input_stream=io.BytesIO(whole[: len(whole) // 2]),
        environ_overrides={"CONTENT_LENGTH": str(len(whole))},
        content_type="application/octet-stream",
        headers={"Aiedit-Request": json.dumps({
            "operation": "upscale", "model": "classic-lanczos",
            "raw": {"image": {"width": W, "height": H}}})},
    )
    assert resp.status_code == 400, resp.get_json()
    assert set(resp.get_json()) >= {"code", "status", "message"}
    assert job_folders(app) == []


def test_a_raw_body_over_max_upload_bytes_is_413_before_it_is_read(make_app):
    app = make_app(max_upload_bytes=1000)
    client = app.test_client()
    resp = post_raw(client, noise_image(W, H).tobytes(), {
        "operation": "upscale", "model": "classic-lanczos",
        "raw": {"image": {"width": W, "height": H}}})
    assert resp.status_code == 413
    assert resp.get_json()["code"] == "too_large"
    assert job_folders(app) == []


def test_a_retried_raw_body_with_its_idempotency_key_is_the_same_job(client, app):
    image = noise_image(W, H).tobytes()
    request = {"operation": "upscale", "model": "classic-lanczos",
               "raw": {"image": {"width": W, "height": H}}}
    first = post_raw(client, image, request, headers={"Idempotency-Key": "k1"})
    again = post_raw(client, image, request, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert job_folders(app) == [first.get_json()["id"]]  # the retry's copy is gone
    other = bytearray(image)
    other[0] ^= 0xFF
    resp = post_raw(client, bytes(other), request, headers={"Idempotency-Key": "k1"})
    assert (resp.status_code, resp.get_json()["code"]) == (422, "idempotency_key_reused")
    assert job_folders(app) == [first.get_json()["id"]]
