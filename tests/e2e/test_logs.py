"""Logs of a real `aiedit serve`: JSON lines carrying job ids, and never the prompt unless the
debug setting asks for it."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.helpers import box_mask, noise_image, png_bytes

pytestmark = pytest.mark.e2e
PROMPT = "a moonlit xylophone-shaped lighthouse 7f3a"


def run_inpaint(server) -> str:
    parts = {
        "request": (None, json.dumps({"operation": "inpaint", "model": "classic-telea",
                                      "params": {"prompt": PROMPT}})),
        "image": ("image.png", png_bytes(noise_image(24, 24)), "image/png"),
        "mask": ("mask.png", png_bytes(box_mask(24, 24, (4, 4, 12, 12))), "image/png"),
    }
    job = requests.post(server.url + "/v1/jobs", files=parts, timeout=30).json()
    deadline = time.monotonic() + 60
    while job["state"] not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, job
        job = requests.get(f"{server.url}/v1/jobs/{job['id']}?wait=5", timeout=30).json()
    assert job["state"] == "succeeded", job
    return job["id"]


def test_json_logs_carry_the_job_id_and_never_the_prompt(server_factory):
    server = server_factory(env={"AIEDIT_LOG_FORMAT": "json"})
    job_id = run_inpaint(server)
    server.stop()

    lines = [json.loads(line) for line in server.log().splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    about_job = [line for line in lines if line.get("job_id") == job_id]
    messages = [line["message"] for line in about_job]
    assert messages[:3] == ["job queued", "job started", "job succeeded"]
    assert about_job[0]["operation"] == "inpaint" and about_job[0]["model"] == "classic-telea"
    assert about_job[2]["duration_s"] >= 0
    assert any("serving on" in line["message"] for line in lines)  # start-up lines too
    assert PROMPT not in server.log() and "xylophone" not in server.log()


def test_the_debug_setting_logs_prompts(server_factory):
    server = server_factory(env={"AIEDIT_LOG_FORMAT": "json", "AIEDIT_LOG_PROMPTS": "1"})
    job_id = run_inpaint(server)
    server.stop()
    queued = [
        line for line in map(json.loads, server.log().splitlines())
        if line.get("job_id") == job_id and line["message"] == "job queued"
    ]
    assert queued[0]["params"]["prompt"] == PROMPT


def test_personal_mode_logs_text_with_the_job_id(server_factory):
    server = server_factory()
    job_id = run_inpaint(server)
    server.stop()
    lines = server.log().splitlines()
    assert not lines[0].startswith("{")
    started = [line for line in lines if "job started" in line]
    assert started and f"job={job_id}" in started[0]
    assert PROMPT not in server.log()
