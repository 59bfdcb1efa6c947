"""Restore jobs with spandrel models through the HTTP API: a denoiser over the whole layer,
face nets on detected, aligned faces."""

from __future__ import annotations

import numpy as np

from tests.engines.spandrel.conftest import face_photo
from tests.helpers import decode_png, noise_image, png_bytes, submit, wait_finished


def restore_job(client, image, model, timeout=240, **params):
    resp = submit(client, "restore", {"image": png_bytes(image)}, model=model, params=params)
    assert resp.status_code == 202, resp.get_json()
    return wait_finished(client, resp.get_json()["id"], timeout=timeout)


def result_pixels(client, job):
    assert job["state"] == "succeeded", job
    return decode_png(client.get(job["results"][0]["url"]).data)


def test_denoiser_strength_zero_keeps_the_layer_and_one_changes_it(client, tiny_scunet):
    image = face_photo(72)
    untouched = result_pixels(client, restore_job(client, image, "tiny-scunet", strength=0.0))
    assert np.array_equal(untouched, image)
    job = restore_job(client, image, "tiny-scunet", strength=1.0)
    restored = result_pixels(client, job)
    assert restored.shape == image.shape
    assert np.abs(restored[..., :3].astype(int) - image[..., :3]).mean() > 1.0
    assert job["progress"]["total"] >= 1


def face_box(size):
    from aiedit.imaging.faces import detect_faces

    faces = detect_faces(np.ascontiguousarray(face_photo(size)[..., :3]))
    assert len(faces) == 1, "the astronaut photo should show exactly one face"
    return [int(v) for v in faces[0].box]


def assert_only_the_face_changed(image, restored):
    x0, y0, x1, y1 = face_box(image.shape[0])
    changed = np.abs(restored[..., :3].astype(int) - image[..., :3]).max(axis=2) > 0
    assert changed[y0:y1, x0:x1].mean() > 0.5
    assert not changed[-20:, -20:].any() and not changed[:10].any()


def test_gfpgan_restores_the_detected_face_only(client, tiny_gfpgan):
    image = face_photo(256)
    job = restore_job(client, image, "tiny-gfpgan", strength=1.0)
    assert job["progress"]["stage"] == "done"
    assert_only_the_face_changed(image, result_pixels(client, job))


def test_codeformer_restores_the_detected_face_only(client, tiny_codeformer):
    image = face_photo(256)
    job = restore_job(client, image, "tiny-codeformer", strength=0.7)
    assert_only_the_face_changed(image, result_pixels(client, job))


def test_a_face_model_on_a_layer_without_faces_fails_with_a_reason(client, tiny_gfpgan):
    job = restore_job(client, noise_image(96, 96), "tiny-gfpgan")
    assert job["state"] == "failed"
    assert job["error"]["code"] == "no_face_found"
    assert "no face was found" in job["error"]["message"]


def restore16(client, image16, model, **params):
    height, width = image16.shape[:2]
    resp = submit(client, "restore", {"image": image16.astype("<u2").tobytes()}, model=model,
                  params=params, raw={"image": {"width": width, "height": height,
                                                "format": "rgba16"}})
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"], timeout=240)
    assert job["state"] == "succeeded", job
    assert job["results"][0]["depth"] == 16
    body = client.get(job["results"][0]["url"] + "?format=rgba16").data
    return np.frombuffer(body, "<u2").reshape(image16.shape)


def deep_share(values):
    """The share of values, among those the (random tiny) net did not clip to 0 or 65535, that
    8 bits cannot hold."""
    inside = values[(values > 0) & (values < 65535)]
    assert inside.size > values.size // 4
    return (inside % 257 != 0).mean()


def with_low_bits(image):
    """The 8-bit photo at 16 bits with low bits 8 bits cannot hold."""
    rng = np.random.default_rng(8)
    wide = image.astype(np.uint16) * 257
    wide[..., :3] += rng.integers(0, 100, image.shape[:2] + (3,), dtype=np.uint16)
    return np.minimum(wide, 65535)


def test_a_denoiser_restores_16_bit_layers_at_16_bits(client, tiny_scunet):
    image = with_low_bits(face_photo(72))
    assert np.array_equal(restore16(client, image, "tiny-scunet", strength=0.0), image)
    out = restore16(client, image, "tiny-scunet", strength=1.0)
    assert np.abs(out[..., :3].astype(int) - image[..., :3]).mean() > 257
    assert deep_share(out[..., :3]) > 0.9  # computed in float, not 8 bits widened
    assert np.array_equal(out[..., 3], image[..., 3])


def test_a_face_net_on_a_16_bit_layer_changes_only_the_face(client, tiny_gfpgan):
    image = with_low_bits(face_photo(256))
    out = restore16(client, image, "tiny-gfpgan", strength=1.0)
    x0, y0, x1, y1 = face_box(256)
    changed = (out[..., :3] != image[..., :3]).any(axis=2)
    assert changed[y0:y1, x0:x1].mean() > 0.5
    assert not changed[-20:, -20:].any() and not changed[:10].any()  # low bits kept there
    assert deep_share(out[y0:y1, x0:x1, :3]) > 0.9
