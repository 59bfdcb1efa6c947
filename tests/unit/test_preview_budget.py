"""Step previews are rationed: at most one every PREVIEW_EVERY_S, and only while they have cost
less than PREVIEW_BUDGET of the running time, so a slow decoder cannot slow a job down."""

from __future__ import annotations

import numpy as np

from aiedit.ops import base
from aiedit.ops.base import Progress


def test_no_sink_no_previews():
    assert not Progress(lambda *a: None, lambda: False).wants_preview()


def test_previews_are_spaced_and_stay_within_their_budget(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(base.time, "monotonic", lambda: clock[0])
    shown = []
    progress = Progress(lambda *a: None, lambda: False, lambda step, px: shown.append(step))
    pixels = np.zeros((4, 4, 3), np.uint8)

    clock[0] += 10.0
    assert progress.wants_preview()  # nothing spent yet
    progress.preview(1, pixels, cost_s=0.1)
    assert shown == [1]
    clock[0] += base.PREVIEW_EVERY_S / 2
    assert not progress.wants_preview()  # too soon
    clock[0] += base.PREVIEW_EVERY_S
    assert progress.wants_preview()  # 0.1 s spent of 10.75 s: within 3 %

    progress.preview(2, pixels, cost_s=5.0)  # a very slow decode
    clock[0] += base.PREVIEW_EVERY_S * 4
    assert not progress.wants_preview()  # 5.1 s of ~12.8 s: over budget, no more for now
    clock[0] += 200.0
    assert progress.wants_preview()  # the budget has grown with the running time
