"""`GET /metrics` in Prometheus text format, for an admin key or a key-less request from loopback.

Every value is read when Prometheus scrapes, from the database (the jobs, and counts of finished
jobs that the runner keeps there as jobs finish and that outlive them: jobs/stats.py) and the
queue (its workers: in studio mode their heartbeats in the shared store), never from counters kept
in one process: with several API processes any of them answers for all. Not part of the JSON
API, so not in the OpenAPI document (docs/http-api.md describes it).
"""

from __future__ import annotations

import ipaddress

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from aiedit import __version__
from aiedit.api.auth import current_principal
from aiedit.api.errors import ApiError
from aiedit.jobs import overview, stats
from aiedit.store.db import as_utc, utcnow

blp = Blueprint("metrics", __name__)


class JobsCollector:
    """Reads the shared state at each scrape (prometheus-client calls `collect`)."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        db = self.services.db
        info = GaugeMetricFamily(
            "aiedit_info", "Server version and mode", labels=["version", "mode"]
        )
        info.add_metric([__version__, self.services.config.mode], 1)
        yield info

        depth = GaugeMetricFamily(
            "aiedit_queue_depth", "Jobs waiting to start, per device queue", labels=["device"]
        )
        for device, n in sorted(overview.queue_depth(db).items()):
            depth.add_metric([device], n)
        yield depth

        oldest = overview.oldest_queued(db)
        wait = GaugeMetricFamily(
            "aiedit_queue_oldest_wait_seconds", "How long the oldest queued job has waited"
        )
        wait.add_metric([], (utcnow() - as_utc(oldest)).total_seconds() if oldest else 0.0)
        yield wait

        jobs = GaugeMetricFamily(
            "aiedit_jobs",
            "Jobs the server holds, by operation and state (finished jobs are kept until they "
            "expire, retention_hours after they finish)",
            labels=["operation", "state"],
        )
        for operation, state, n in sorted(overview.state_counts(db)):
            jobs.add_metric([operation, state], n)
        yield jobs

        finished = CounterMetricFamily(
            "aiedit_jobs_finished",
            "Jobs that reached a final state, by operation, model and state",
            labels=["operation", "model", "state"],
        )
        for operation, model, state, n in sorted(stats.finished(db)):
            finished.add_metric([operation, model, state], n)
        yield finished

        failed = CounterMetricFamily(
            "aiedit_job_failures",
            "Failed jobs by operation and error code",
            labels=["operation", "code"],
        )
        for operation, code, n in sorted(stats.failures(db)):
            failed.add_metric([operation, code], n)
        yield failed

        duration = HistogramMetricFamily(
            "aiedit_job_duration_seconds",
            "Run time (start to finish) of succeeded jobs, by operation and model",
            labels=["operation", "model"],
        )
        for h in stats.durations(db):
            duration.add_metric([h.operation, h.model], h.cumulative(), sum_value=h.total_s)
        yield duration

        yield from _worker_metrics(self.services.queue.workers())


def _worker_metrics(workers):
    up = GaugeMetricFamily(
        "aiedit_workers", "Workers taking jobs, per device", labels=["device"]
    )
    busy = GaugeMetricFamily(
        "aiedit_worker_busy", "1 while the worker runs a job", labels=["worker", "device"]
    )
    held = GaugeMetricFamily(
        "aiedit_worker_model_loaded",
        "1 for each model a worker holds loaded",
        labels=["worker", "device", "model"],
    )
    per_device: dict[str, int] = {}
    for w in workers:
        per_device[w.device] = per_device.get(w.device, 0) + 1
        busy.add_metric([w.name, w.device], 1 if w.job_id else 0)
        for model in w.models:
            held.add_metric([w.name, w.device, model], 1)
    for device, n in sorted(per_device.items()):
        up.add_metric([device], n)
    return up, busy, held


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def require_admin_or_loopback() -> None:
    """An admin key, or (setting metrics_loopback) no key at all from this machine."""
    services = current_app.extensions["aiedit"]
    if "Authorization" not in request.headers:
        if services.config.metrics_loopback and is_loopback(request.remote_addr):
            return
        raise ApiError(
            401,
            "unauthorized",
            "metrics need an admin key: send `Authorization: Bearer <key>` (create one with "
            "`aiedit keys create --name NAME --role admin`), or ask from the server's machine",
            headers={"WWW-Authenticate": 'Bearer realm="aiedit"'},
        )
    if not current_principal(current_app).is_admin:
        raise ApiError(403, "forbidden", "metrics are for admin keys; this key is not one")


@blp.get("/metrics")
def metrics():
    require_admin_or_loopback()
    services = current_app.extensions["aiedit"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(services))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
