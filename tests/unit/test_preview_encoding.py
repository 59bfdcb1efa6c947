"""A step preview is kept as pixels and encoded as PNG only when a client asks for it: a job
nobody watches never spends its own time on the encoding, and a watched one pays once per
preview, in the request's thread."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from aiedit.jobs import events
from aiedit.jobs.events import JobEvents


def test_previews_are_encoded_when_asked_for_and_once(monkeypatch):
    encoded = []
    real = events.preview_png
    monkeypatch.setattr(events, "preview_png", lambda px: encoded.append(px.shape) or real(px))
    hub = JobEvents()
    pixels = np.zeros((24, 32, 3), np.uint8)
    pixels[..., 0] = 200

    hub.put_preview("job1", 3, pixels)
    assert hub.preview_step("job1") == 3
    assert encoded == []  # polling for a new step does not encode

    step, png = hub.preview("job1")
    assert step == 3 and encoded == [(24, 32, 3)]
    picture = Image.open(io.BytesIO(png))
    assert (picture.format, picture.mode, picture.size) == ("PNG", "RGBA", (32, 24))
    assert picture.getpixel((5, 5)) == (200, 0, 0, 255)

    assert hub.preview("job1") == (3, png)  # a second client gets the same bytes
    assert len(encoded) == 1

    hub.put_preview("job1", 7, np.full((24, 32, 3), 9, np.uint8))  # a newer step replaces it
    assert hub.preview_step("job1") == 7 and len(encoded) == 1
    assert hub.preview("job1")[0] == 7 and len(encoded) == 2

    hub.drop_preview("job1")
    assert hub.preview("job1") is None and hub.preview_step("job1") is None


def test_a_job_keeps_its_own_copy_of_the_preview_pixels():
    from aiedit.jobs.runner import JobRunner

    hub = JobEvents()
    runner = JobRunner.__new__(JobRunner)  # report_preview needs nothing but the events
    runner.events = hub
    pixels = np.zeros((8, 8, 4), np.uint8)
    runner.report_preview("job2", 1, pixels)
    pixels[:] = 255  # the decoder's buffer is reused for the next step
    step, png = hub.preview("job2")
    assert np.asarray(Image.open(io.BytesIO(png)))[..., :3].max() == 0
