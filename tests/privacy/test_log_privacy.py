"""No prompt reaches a log line by default: not the server's own lines, not an exception's text
while a job runs or a request is answered, not a library's warning that quotes the prompt
(diffusers' CLIP truncation notice), not the refusals; the stored error messages and counters
hold none either, and the server's temporary folder holds no prompt or upload."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import time
import uuid

import pytest
import requests

from aiedit import logs
from aiedit.config import Config
from aiedit.ops import base
from tests.fixtures.tiny_server import ensure_tiny_hub, tiny_env
from tests.helpers import AIEDIT_BIN, box_mask, noise_image, png_bytes, submit, wait_finished
from tests.privacy.scan import files_containing, rows_containing


def _post(server, operation, model, params, files=None):
    parts = {"request": (None, json.dumps({"operation": operation, "model": model,
                                           "params": params}))}
    for name, data in (files or {}).items():
        parts[name] = (f"{name}.png", data, "image/png")
    return requests.post(server.url + "/v1/jobs", files=parts, timeout=60)


def _finish(server, job_id) -> dict:
    deadline = time.monotonic() + 120
    while True:
        job = requests.get(f"{server.url}/v1/jobs/{job_id}?wait=5", timeout=30).json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            return job
        assert time.monotonic() < deadline, job


@pytest.mark.e2e
@pytest.mark.ml
def test_a_unique_prompt_is_in_no_log_line(server_factory, tmp_path):
    canary = f"canary{uuid.uuid4().hex[:12]}"
    data_dir = tmp_path / "data"
    subprocess.run([str(AIEDIT_BIN), "blocklist", "add", "forbidden lighthouse", "--data-dir",
                    str(data_dir)], check=True, capture_output=True, timeout=120)
    temp = tmp_path / "tmp"  # the server's temporary folder: nothing of the user goes there
    temp.mkdir()
    server = server_factory(data_dir, env={**tiny_env(ensure_tiny_hub()),
                                           "AIEDIT_LOG_FORMAT": "json", "TMPDIR": str(temp)})
    # a prompt longer than CLIP's 77 tokens: diffusers logs the part it cut off
    long_prompt = " ".join([canary] * 60)
    resp = _post(server, "generate", "tiny-sdxl",
                 {"prompt": long_prompt, "negative_prompt": f"neg {canary}", "width": 64,
                  "height": 64, "steps": 2})
    assert resp.status_code == 202, resp.text
    assert _finish(server, resp.json()["id"])["state"] == "succeeded"

    image = png_bytes(noise_image(24, 24))
    mask = png_bytes(box_mask(24, 24, (4, 4, 12, 12)))
    ok = _post(server, "inpaint", "classic-telea", {"prompt": f"a {canary} in fog"},
               {"image": image, "mask": mask})
    assert _finish(server, ok.json()["id"])["state"] == "succeeded"
    refused = _post(server, "inpaint", "classic-telea",
                    {"prompt": f"a forbidden lighthouse {canary}"}, {"image": image, "mask": mask})
    assert refused.status_code == 422 and refused.json()["code"] == "prompt_refused"
    too_long = _post(server, "inpaint", "classic-telea", {"prompt": canary * 400},
                     {"image": image, "mask": mask})
    assert too_long.status_code == 422
    bad_json = requests.post(server.url + "/v1/jobs", files={
        "request": (None, '{"operation": "inpaint", "params": {"prompt": "' + canary + '"'),
    }, timeout=30)
    assert bad_json.status_code == 400
    server.stop()

    log = server.log()
    assert "text encoder reads" in log, "the truncation path was taken"
    assert canary not in log
    assert canary not in re.sub(r"[\s',]+", "", log), "a tokenizer's spaced-out copy"
    stored = rows_containing(f"sqlite:///{data_dir / 'aiedit.sqlite3'}", [canary])
    assert {(table, column) for table, column, _ in stored} == {("jobs", "params")}
    upload = image[len(image) // 2:][:64]
    assert files_containing(data_dir, [upload]), "the upload is in the server's own storage"
    assert files_containing(temp, [canary.encode(), upload]) == [], "and nowhere else"


def test_an_exception_that_quotes_the_prompt_is_logged_without_it(tmp_path, models_dir,
                                                                   monkeypatch):
    from aiedit.app import create_app, services_of

    canary = f"canary{uuid.uuid4().hex[:12]}"
    stream = io.StringIO()
    config = Config(data_dir=tmp_path / "d", testing=True, models_dir=str(models_dir),
                    log_format="json")
    logs.configure(config, stream)

    def run(ctx):
        raise ValueError(f"cannot draw {ctx.params['prompt']!r}")

    registry = base.registry()
    monkeypatch.setitem(registry, "inpaint", dataclasses.replace(registry["inpaint"], run=run))
    app = create_app(config)
    try:
        client = app.test_client()
        files = {"image": png_bytes(noise_image(16, 16)),
                 "mask": png_bytes(box_mask(16, 16, (2, 2, 8, 8)))}
        job = submit(client, "inpaint", files, model="classic-telea",
                     params={"prompt": f"a {canary} at dusk"}).get_json()
        job = wait_finished(client, job["id"])
        assert job["error"]["code"] == "internal_error"
        assert canary not in json.dumps(job)
    finally:
        services_of(app).stop()
        logs.configure(Config(data_dir=tmp_path / "d"), io.StringIO())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    failed = [line for line in lines if line["message"].endswith("failed")]
    assert failed and "ValueError: cannot draw '[user text]'" in failed[0]["exception"]
    assert canary not in stream.getvalue()


def test_an_unexpected_error_in_a_request_is_logged_without_its_prompt(tmp_path, models_dir,
                                                                        monkeypatch):
    from aiedit.api import job_request
    from aiedit.app import create_app, services_of

    canary = f"canary{uuid.uuid4().hex[:12]}"
    stream = io.StringIO()
    config = Config(data_dir=tmp_path / "d", testing=True, models_dir=str(models_dir))
    logs.configure(config, stream)

    def broken(owner, params):
        raise RuntimeError(f"could not check {params['prompt']!r}")

    monkeypatch.setattr(job_request, "check_prompt", broken)
    app = create_app(config)
    try:
        files = {"image": png_bytes(noise_image(16, 16)),
                 "mask": png_bytes(box_mask(16, 16, (2, 2, 8, 8)))}
        client = app.test_client()
        resp = submit(client, "inpaint", files, model="classic-telea",
                      params={"prompt": f"a {canary} at dusk"})
        assert resp.status_code == 500 and canary not in resp.get_data(as_text=True)
        request = {"operation": "upscale", "model": "classic-lanczos",
                   "params": {"refine_prompt": f"{canary} again"},
                   "raw": {"image": {"width": 4, "height": 4}}}
        monkeypatch.setattr(job_request, "check_prompt", lambda owner, params: broken(
            owner, {"prompt": params["refine_prompt"]}))
        raw = client.post("/v1/jobs/raw", data=bytes(64), content_type="application/octet-stream",
                          headers={"Aiedit-Request": json.dumps(request)})
        assert raw.status_code == 500
    finally:
        services_of(app).stop()
        logs.configure(Config(data_dir=tmp_path / "d"), io.StringIO())
    log = stream.getvalue()
    assert log.count("RuntimeError: could not check '[user text]'") == 2
    assert canary not in log
