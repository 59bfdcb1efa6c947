"""Load: 200 jobs from 20 concurrent clients against `aiedit serve` with its default settings:
none lost, no 5xx, and the default rate limit does not get in the way of plugin-like clients."""

from __future__ import annotations

import pytest

from bench.bench_load import run_load

pytestmark = pytest.mark.e2e


def test_200_jobs_from_20_clients_lose_nothing(proof_server):
    result = run_load(proof_server.url, jobs=200, clients=20)
    print(result.summary())
    assert result.lost == []
    assert result.succeeded == 200
    assert result.server_errors == 0
    assert result.rate_limited == 0
    assert "Traceback" not in proof_server.log()
