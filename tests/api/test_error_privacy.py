"""Errors sent to clients name the job for the log, never a file path or a library's own text;
the log has the detail with the job id."""

import dataclasses
import errno
import logging

import pytest

from aiedit.ops.base import registry
from tests.helpers import noise_image, png_bytes, submit, wait_finished

IMAGE = png_bytes(noise_image(16, 16))
SECRET_PATH = "/home/someone/.cache/aiedit/models/secret-weights.safetensors"


def failing_upscale(monkeypatch, exc: Exception):
    def run(ctx):
        raise exc

    op = registry()["upscale"]
    monkeypatch.setitem(registry(), "upscale", dataclasses.replace(op, run=run))


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RuntimeError(f"Error(s) in loading state_dict from {SECRET_PATH}: size mismatch"),
         "internal_error"),
        (PermissionError(errno.EACCES, "Permission denied", SECRET_PATH), "storage_error"),
    ],
)
def test_a_failed_job_tells_the_client_its_id_not_the_exception(
    client, monkeypatch, caplog, exc, code
):
    failing_upscale(monkeypatch, exc)
    with caplog.at_level(logging.ERROR, logger="aiedit.jobs.runner"):
        job = wait_finished(client, submit(client, "upscale", {"image": IMAGE}).get_json()["id"])
    assert job["state"] == "failed"
    error = job["error"]
    assert error["code"] == code
    assert job["id"] in error["message"] and "log" in error["message"]
    for leak in (SECRET_PATH, "secret-weights", "state_dict", "Permission denied", "/home/"):
        assert leak not in error["message"], error["message"]
    logged = [r for r in caplog.records if job["id"] in r.getMessage()]
    assert logged, "the log names the job"
    assert any(SECRET_PATH in (r.exc_text or "") or SECRET_PATH in str(r.exc_info[1])
               for r in logged if r.exc_info), "the log keeps the detail"


def test_an_unexpected_error_in_a_view_answers_a_generic_500(app, client, monkeypatch):
    from aiedit.api import operations

    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot open {SECRET_PATH}")

    monkeypatch.setattr(operations, "describe_operation", broken)
    resp = client.get("/v1/operations")
    assert resp.status_code == 500
    body = resp.get_json()
    assert body["code"] == "internal_error"
    assert SECRET_PATH not in resp.get_data(as_text=True)


def test_an_upload_that_cannot_be_stored_names_no_path(app, client, monkeypatch):
    from aiedit.app import services_of

    def unwritable(new, admit=None):
        raise OSError(f"cannot write {SECRET_PATH}")  # no errno: str() would be the path

    monkeypatch.setattr(services_of(app).runner, "submit", unwritable)
    resp = submit(client, "upscale", {"image": IMAGE})
    assert resp.status_code == 507
    assert SECRET_PATH not in resp.get_data(as_text=True)
    assert "free space" in resp.get_json()["message"]


@pytest.mark.parametrize(
    "data",
    [
        png_bytes(noise_image(64, 64))[:300],  # truncated: PIL says "image file is truncated ..."
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\xff" * 17,  # damaged header chunk
    ],
    ids=["truncated", "damaged-header"],
)
def test_an_undecodable_upload_is_described_without_the_imaging_library_s_text(
    client, caplog, data
):
    import io

    with caplog.at_level(logging.INFO, logger="aiedit.imaging.codec"):
        resp = client.post(
            "/v1/jobs",
            data={"request": '{"operation": "upscale"}', "image": (io.BytesIO(data), "x.png")},
            content_type="multipart/form-data",
        )
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "image_undecodable"
    message = body["message"] + str(body.get("errors", ""))
    for library_words in ("image file is truncated", "bytes not processed",
                          "broken data stream", "CRC", "Errno", "Traceback", "PIL"):
        assert library_words not in message, message
    if len(data) == 300:  # the truncated file: PIL's own words about it go to the log only
        [record] = [r for r in caplog.records if r.name == "aiedit.imaging.codec"]
        assert "image file is truncated" in record.getMessage()
