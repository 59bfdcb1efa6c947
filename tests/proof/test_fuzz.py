"""Fuzzing every endpoint from the OpenAPI document: no 5xx, and every response (status, headers,
content type, body) conforms to what the document says.

Schemathesis drives the WSGI app in-process (the same Flask app `aiedit serve` runs), with a
fixed derandomized seed so CI sees the same cases every run. Path ids are swapped, for part of
the cases, for ids of real jobs, so the code behind an existing job is fuzzed too.

`positive_data_acceptance` is the one check left out: it demands that every request the schema
allows succeeds, but whether an upload decodes, whether a model does an operation and what
params an operation takes are decided by the server, not expressible in OpenAPI."""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from aiedit.api.operations import params_json_schema
from aiedit.app import create_app, services_of
from aiedit.config import Config
from tests.helpers import box_mask, noise_image, png_bytes, submit, wait_finished

EXAMPLES_PER_OPERATION = 200
MIN_TOTAL_CASES = 1000

CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


def _fuzz_app():
    """Built at import, since schemathesis reads the schema when tests are collected; its
    workers start only when the fuzz test runs."""
    data_dir = Path(tempfile.mkdtemp(prefix="aiedit-fuzz-"))
    # Every test process that collects this file builds one; only the one that runs it stops it.
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    config = Config(data_dir=data_dir, testing=True, rate_limit_per_minute=0)
    return create_app(config, start=False)


APP = _fuzz_app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def fuzz_app():
    services = services_of(APP)
    services.start()
    yield APP
    services.stop()
    shutil.rmtree(services.config.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def real_job_ids(fuzz_app):
    return _real_jobs(fuzz_app)


def _real_jobs(app) -> list[str]:
    """A few jobs that exist (finished, with results), so ids in paths sometimes hit one."""
    client = app.test_client()
    image = png_bytes(noise_image(24, 16))
    mask = png_bytes(box_mask(24, 16, (4, 4, 12, 12)))
    ids = []
    for _ in range(3):
        job = submit(client, "upscale", {"image": image}, model="classic-lanczos").get_json()
        ids.append(job["id"])
        job = submit(client, "inpaint", {"image": image, "mask": mask}).get_json()
        ids.append(job["id"])
    for job_id in ids:
        wait_finished(client, job_id)
    return ids


def _maybe_real_job(case, job_ids: list[str]) -> None:
    path = case.path_parameters or {}
    if "job_id" not in path:
        return
    pick = zlib.crc32(repr(sorted(path.items())).encode())
    if pick % 3:
        real = {"job_id": job_ids[pick % len(job_ids)]}
        if "index" in path and pick % 2:
            real["index"] = 0
        case.path_parameters = {**path, **real}


# One pytest item per endpoint with its own id: schemathesis' `parametrize` gives every endpoint
# the same node id, and pytest-xdist then runs only one of them.
ENDPOINTS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.label)
def test_every_endpoint_survives_fuzzing(endpoint, real_job_ids):
    """Every case: no 5xx; status, headers, content type and body as documented."""

    @given(case=endpoint.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        _maybe_real_job(case, real_job_ids)
        CASES[f"{case.method} {case.path}"] += 1
        response = case.call_and_validate(excluded_checks=[checks.positive_data_acceptance])
        STATUSES[response.status_code] += 1

    fuzz()


# --- params of real operations ----------------------------------------------------------------
# Schemathesis cannot know which operation, model and files make a submission valid, so its
# cases stop at the first check. Here the operation, model and files are real and the params,
# region and raw sizes are fuzzed: every answer is 202 or a 4xx error, and every accepted job
# ends succeeded or failed with a code other than internal_error.

TARGETS = {
    "upscale": ("classic-lanczos", ("image",)),
    "inpaint": ("classic-telea", ("image", "mask")),
    "outpaint": ("classic-telea", ("image",)),
    "restore": ("classic-denoise", ("image",)),
}
FILES = {
    "image": png_bytes(noise_image(16, 12)),
    "mask": png_bytes(box_mask(16, 12, (2, 2, 9, 9))),
}
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _params(op_id: str):
    """Half of the time plausible values for known params (so many jobs run), else anything."""
    known = sorted(params_json_schema(op_id)["properties"])
    plausible = st.dictionaries(
        st.sampled_from(known),
        st.integers(-4, 600) | st.floats(-1.0, 10.0) | st.text(max_size=20),
        max_size=3,
    )
    anything = st.dictionaries(st.sampled_from(known) | st.text(max_size=12), JSON_VALUES)
    return plausible | anything


@st.composite
def submissions(draw):
    op_id = draw(st.sampled_from(sorted(TARGETS)))
    model, names = TARGETS[op_id]
    request = {"operation": op_id, "model": model, "params": draw(_params(op_id))}
    if draw(st.booleans()):
        request["region"] = draw(st.dictionaries(st.sampled_from("xywh"), JSON_SCALARS))
    if draw(st.integers(0, 4)) == 0:
        request["raw"] = draw(st.dictionaries(st.sampled_from(names), JSON_VALUES, max_size=2))
    return request, {name: FILES[name] for name in names}


@given(submissions())
@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_params_of_real_operations_get_202_or_a_named_4xx(fuzz_app, submission):
    request, files = submission
    client = fuzz_app.test_client()
    data = {"request": json.dumps(request)}
    data.update({name: (io.BytesIO(content), f"{name}.png") for name, content in files.items()})
    resp = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    CASES["POST /v1/jobs (real operations, fuzzed params)"] += 1
    STATUSES[resp.status_code] += 1
    body = resp.get_json()
    if resp.status_code == 202:
        job = wait_finished(client, body["id"])
        assert job["state"] == "succeeded" or job["error"]["code"] != "internal_error", job
        return
    assert 400 <= resp.status_code < 500, body
    assert body["status"] == resp.status_code and len(body["message"]) > 10, body


def test_fuzzing_ran_enough_cases():
    """Runs after the fuzz test in this module: it reports on what that test did."""
    total = sum(CASES.values())
    summary = ", ".join(f"{name}: {count}" for name, count in sorted(CASES.items()))
    print(f"fuzzed {total} cases ({summary}); statuses {dict(sorted(STATUSES.items()))}")
    assert total >= MIN_TOTAL_CASES, f"only {total} fuzz cases ran ({summary}); run the module"
    assert CASES["POST /v1/jobs"] >= EXAMPLES_PER_OPERATION // 2, summary
