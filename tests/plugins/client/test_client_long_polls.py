"""The shared client follows a job even when the server already holds as many long-polls as
it allows: the refused poll (429 too_many_long_polls) is retried, not reported as a failure."""

import dataclasses
import threading
import time

import requests
from aiedit_client import Client
from waitress import create_server

from aiedit.app import create_app, services_of
from aiedit.cli import waitress_settings
from aiedit.ops import base
from aiedit.ops.base import ImageOutput
from tests.helpers import noise_image, png_bytes


def test_a_refused_long_poll_is_retried_until_the_job_ends(config, monkeypatch):
    release = threading.Event()

    def run(ctx):
        while not release.wait(0.05):
            ctx.progress(0, 1, "waiting")
        return [ImageOutput(ctx.inputs["image"].copy())]

    registry = base.registry()
    monkeypatch.setitem(registry, "restore", dataclasses.replace(registry["restore"], run=run))
    config = dataclasses.replace(config, max_long_polls=1)
    app = create_app(config)
    server = create_server(app, host="127.0.0.1", port=0, **waitress_settings(config))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}"
    try:
        files = {"request": (None, '{"operation": "restore", "model": "classic-denoise"}'),
                 "image": ("i.png", png_bytes(noise_image(8, 8)), "image/png")}
        job = requests.post(url + "/v1/jobs", files=files, timeout=30).json()
        outcomes = []

        def follow():
            try:
                outcomes.append(Client(url).wait(job["id"], poll_s=20)["state"])
            except Exception as exc:  # noqa: BLE001 - the test reports what the client raised
                outcomes.append(repr(exc))

        followers = [threading.Thread(target=follow) for _ in range(2)]
        for thread in followers:
            thread.start()
        time.sleep(0.5)  # both followers are polling: one holds the slot
        refused = requests.get(f"{url}/v1/jobs/{job['id']}?wait=5", timeout=30)
        assert refused.status_code == 429, "the server's one long-poll slot is taken"
        release.set()
        for thread in followers:
            thread.join(60)
        assert outcomes == ["succeeded", "succeeded"]
    finally:
        release.set()
        server.close()
        services_of(app).stop()
