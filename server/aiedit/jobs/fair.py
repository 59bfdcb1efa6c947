"""Fair order across users: the queued jobs in the order they will start.

Users take turns, least recently served first (a user who has never had a job started goes
first, then the one whose last job started longest ago); each user's own jobs keep their order.
So one user's 50-job batch does not hold back another user's single job: that job starts with
the next free worker."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

NEVER = datetime.min.replace(tzinfo=UTC)


def fair_order(queued, last_served: dict) -> list[str]:
    """`queued`: (id, owner, created_at, ...) oldest first; `last_served`: owner -> when their
    latest job started (None: never). Returns job ids in start order."""
    per_owner: OrderedDict[str, list[str]] = OrderedDict()
    first_created: dict[str, datetime] = {}
    for job_id, owner, created_at, *_ in queued:
        per_owner.setdefault(owner, []).append(job_id)
        first_created.setdefault(owner, _aware(created_at))
    turn = sorted(
        per_owner,
        key=lambda owner: (_aware(last_served.get(owner)) or NEVER, first_created[owner]),
    )
    order: list[str] = []
    depth = 0
    while len(order) < len(queued):
        for owner in turn:
            jobs = per_owner[owner]
            if depth < len(jobs):
                order.append(jobs[depth])
        depth += 1
    return order


def for_device(order: list[str], queued, device: str, live_devices, cpu_only) -> list[str]:
    """What a worker on `device` may take from `order`. A CPU worker leaves jobs that need a
    model to workers with an accelerator while one is alive (it would run them tens of times
    slower) and takes the classic jobs (`cpu_only(model)`); with no accelerator alive, or on an
    accelerator, everything is fair game. `live_devices()` (the other live workers' devices, a
    database query) is called only when the answer depends on it: on a CPU worker with jobs
    that need a model waiting."""
    if device != "cpu":
        return order
    classic = {job_id for job_id, _, _, model, *_ in queued if cpu_only(model)}
    if len(classic) == len(queued) or all(d == "cpu" for d in live_devices()):
        return order
    return [job_id for job_id in order if job_id in classic]


def _aware(when):
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
