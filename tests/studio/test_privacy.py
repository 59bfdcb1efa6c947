"""The privacy promises in real processes on PostgreSQL and Redis: the workers' and API
processes' sweepers delete expired jobs with their files, and `aiedit users erase` in hosted
mode leaves no trace of a person in any table or data file, their ledger kept as anonymous
amounts."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
import requests

from tests.helpers import box_mask, noise_image, png_bytes
from tests.privacy.scan import files_containing, rows_containing
from tests.studio.conftest import get_job, wait_state

pytestmark = [pytest.mark.studio, pytest.mark.timeout(300)]


def _inpaint(url, headers, prompt, image):
    mask = png_bytes(box_mask(32, 32, (8, 8, 20, 20)))
    request = {"operation": "inpaint", "model": "classic-telea", "params": {"prompt": prompt}}
    resp = requests.post(url + "/v1/jobs", data={"request": json.dumps(request)},
                         files={"image": ("image.png", image), "mask": ("mask.png", mask)},
                         headers=headers, timeout=60)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_studio_sweepers_delete_expired_jobs_and_their_files(studio_factory):
    studio = studio_factory("sweep", AIEDIT_RETENTION_HOURS="0.0005")  # 1.8 s
    url = studio.start_api(workers=1)
    studio.start_worker("w1")
    headers = studio.user("eve")
    job_id = _inpaint(url, headers, "a short-lived lighthouse", png_bytes(noise_image(32, 32)))
    assert wait_state(url, headers, job_id)["state"] == "succeeded"
    folder = studio.root / "data" / "blobs" / job_id
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        gone = requests.get(f"{url}/v1/jobs/{job_id}", headers=headers, timeout=30)
        if gone.status_code == 404 and not folder.exists():
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"job {job_id} not swept:\n{studio.logs()}")
    assert rows_containing(studio.database_url, ["short-lived lighthouse"]) == []


def test_hosted_erasure_leaves_no_trace_and_keeps_anonymous_amounts(studio_factory):
    studio = studio_factory("erase", AIEDIT_MODE="hosted", AIEDIT_RATE_LIMIT_PER_MINUTE="600")
    url = studio.start_api(workers=1)
    studio.start_worker("w1")
    alice, bob = studio.user("alice"), studio.user("bob")
    alice_key = alice["Authorization"].split("_")[1]
    reason = f"welcome-{uuid.uuid4().hex}"
    studio.cli("credits", "grant", "alice", "20", "--reason", reason)
    studio.cli("credits", "grant", "bob", "20", "--reason", "welcome bob")
    prompt = f"prompt-{uuid.uuid4().hex}"
    upload = png_bytes(noise_image(32, 32, seed=11))
    job_id = _inpaint(url, alice, prompt, upload)
    bob_job = _inpaint(url, bob, "bob's harbour", png_bytes(noise_image(32, 32, seed=12)))
    assert wait_state(url, alice, job_id)["state"] == "succeeded"
    assert wait_state(url, bob, bob_job)["state"] == "succeeded"
    account_id = requests.get(url + "/v1/account", headers=alice, timeout=30).json()["id"]
    export = requests.get(url + "/v1/account/export", headers=alice, timeout=60)
    assert export.status_code == 200 and upload in export.content

    texts = ["alice", alice_key, account_id, reason, prompt, job_id]
    needles = [t.encode() for t in texts] + [upload[len(upload) // 2:][:64]]
    assert rows_containing(studio.database_url, texts), "the probe finds her before"
    ledger_before = _ledger(studio)
    assert {"hold", "charge"} <= {kind for kind, _, who in ledger_before if who == account_id}

    broker = redis.Redis.from_url(studio.env["AIEDIT_BROKER_URL"])
    assert _redis_keys_naming(broker, [b"alice", alice_key.encode()]), "her request buckets"

    erased = studio.cli("users", "erase", "alice", "--yes")
    assert "erased alice: 1 job(s), 1 key(s)" in erased.stdout

    assert rows_containing(studio.database_url, texts) == []
    assert files_containing(studio.root / "data", needles) == []
    ledger_after = _ledger(studio)
    assert len(ledger_after) == len(ledger_before)
    anonymous = sorted((kind, amount) for kind, amount, who in ledger_after if who is None)
    assert anonymous == sorted((k, a) for k, a, who in ledger_before if who == account_id)
    assert requests.get(url + "/v1/jobs", headers=alice, timeout=30).status_code == 401
    assert get_job(url, bob, bob_job)["state"] == "succeeded"
    assert _redis_keys_naming(broker, [b"alice", alice_key.encode()]) == []
    assert _redis_keys_naming(broker, [b"owner:bob"]), "bob's bucket stays"


def _redis_keys_naming(client, needles: list[bytes]) -> list[bytes]:
    return [key for key in client.scan_iter() if any(n in key for n in needles)]


def _ledger(studio) -> list[tuple[str, int, str | None]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(studio.database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                text("SELECT kind, amount, account_id FROM ledger ORDER BY id"))]
    finally:
        engine.dispose()
