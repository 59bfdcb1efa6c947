"""Server core: HTTP job overhead, bulk transfer, start-up time (issue: server core)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from bench.common import Row, best_of, operation_call
from tests.helpers import LiveServer, box_mask, decode_png, free_port, noise_image, png_bytes

REPEATS = 3
INPAINT_MODEL = "classic-telea"
INPAINT_REPEATS = 5  # a fill of ~60 ms varies by a third on a shared 2-core machine


def _inpaint_inputs(hole: int, size: int = 1024):
    image = noise_image(size, size, seed=7)
    mask = box_mask(size, size, (size // 3, size // 3, size // 3 + hole, size // 3 + hole))
    return image, mask


def _plugin_client():
    """The client module the GIMP, Krita and Photoshop plugins share (plugins/client)."""
    folder = str(Path(__file__).resolve().parents[1] / "plugins" / "client")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import aiedit_client

    return aiedit_client


def _in_process_inpaint(image, mask):
    """The same fill called in this process: a function that times one call."""
    return operation_call("inpaint", INPAINT_MODEL, {"image": image, "mask": mask})


RAW_ORDER = ("image", "reference", "mask")


def _post(server, operation, files, **request):
    """Submit as the plugins do: raw pixels as the body of POST /v1/jobs/raw (the request JSON
    in a header), encoded images as multipart to POST /v1/jobs."""
    if request.get("raw") and set(files) <= set(request["raw"]):
        body = b"".join(files[name] for name in RAW_ORDER if name in files)
        resp = requests.post(
            server.url + "/v1/jobs/raw", data=body, timeout=120,
            headers={"Aiedit-Request": json.dumps({"operation": operation, **request}),
                     "Content-Type": "application/octet-stream"},
        )
        resp.raise_for_status()
        return resp.json()
    parts = {"request": (None, json.dumps({"operation": operation, **request}))}
    parts.update({name: (name, data, "application/octet-stream") for name, data in files.items()})
    resp = requests.post(server.url + "/v1/jobs", files=parts, timeout=120)
    resp.raise_for_status()
    return resp.json()


def _wait(server, job_id) -> dict:
    while True:
        job = requests.get(f"{server.url}/v1/jobs/{job_id}", params={"wait": 10}, timeout=60).json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            return job


def _seconds(job, start_key, end_key) -> float:
    from datetime import datetime

    return (
        datetime.fromisoformat(job[end_key]) - datetime.fromisoformat(job[start_key])
    ).total_seconds()


def _http_inpaint(server, image, mask, floor: TransferFloor) -> tuple[float, ...]:
    """Best of INPAINT_REPEATS rounds, each: the fill in this process, then end to end (POST
    until the result is decoded in the client) with raw RGBA and with PNG upload and download.
    Alternating, so a noisy moment on a shared machine hits both sides of the ratio alike.
    The transfer floor (TransferFloor) takes its turn in each round too.
    Returns (in-process, the job's own run time, raw end to end, PNG end to end, floor)."""
    plugin = _plugin_client()
    client = plugin.Client(server.url)
    in_process = _in_process_inpaint(image, mask)
    height, width = image.shape[:2]
    pixels = plugin.Pixels(width, height, image.tobytes())
    hole = plugin.Mask(width, height, mask.tobytes())
    png_files = {"image": png_bytes(image), "mask": png_bytes(mask)}
    best_in, best_run, best_raw, best_png, best_floor = (float("inf"),) * 5
    body = pixels.data + hole.data
    floor.call(body, len(pixels.data))
    in_process()  # warm: the model loaded, OpenCV's first call made
    client.operations()  # the plugins ask once, when they start
    for _ in range(INPAINT_REPEATS):
        best_in = min(best_in, in_process())
        # raw RGBA as the plugins send and fetch it: their own client
        started = time.perf_counter()
        job = client.wait(client.submit("inpaint", pixels, hole, model=INPAINT_MODEL)["id"])
        result = client.fetch_pixels(client.results(job)[0])
        assert (result.width, result.height, len(result.data)) == (width, height, image.size)
        best_raw = min(best_raw, time.perf_counter() - started)
        best_run = min(best_run, _seconds(job, "started_at", "finished_at"))
        requests.delete(f"{server.url}/v1/jobs/{job['id']}", timeout=30)

        started = time.perf_counter()
        job = _wait(server, _post(server, "inpaint", png_files, model=INPAINT_MODEL)["id"])
        data = requests.get(server.url + job["results"][0]["url"], timeout=60).content
        assert decode_png(data).shape == image.shape
        best_png = min(best_png, time.perf_counter() - started)
        requests.delete(f"{server.url}/v1/jobs/{job['id']}", timeout=30)

        best_floor = min(best_floor, floor.call(body, len(pixels.data)))
    return best_in, best_run, best_raw, best_png, best_floor


def _floor_app(folder: Path):
    """The least any server must do for the raw inpaint row, as a WSGI app with nothing else:
    `POST /job` stores the body in a new file as it arrives and syncs it (the inputs are on disk
    before the 202; the seconds that sync took come back in the answer, because a server may
    run the fill meanwhile), then writes and syncs a result of `X-Result-Bytes` in a new file (a
    job says succeeded only when its result is on disk); `GET /result` sends that file. Each
    POST removes the previous round's files first, as deleting a finished job does."""
    counter = iter(range(1 << 30))
    latest: list[Path] = []

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            for old in latest:
                old.unlink()
            n = next(counter)
            latest[:] = [folder / f"input-{n}", folder / f"result-{n}"]
            began = time.perf_counter()
            source, left = environ["wsgi.input"], int(environ["CONTENT_LENGTH"])
            view = memoryview(bytearray(min(left, 1 << 22)))
            with open(latest[0], "wb") as fh:
                while left:
                    got = source.readinto(view[: min(len(view), left)])
                    fh.write(view[:got])
                    left -= got
                fh.flush()
                syncing = time.perf_counter()
                os.fsync(fh.fileno())
            writing = time.perf_counter()
            pixels = bytes(int(environ["HTTP_X_RESULT_BYTES"]))
            with open(latest[1], "wb") as fh:
                fh.write(pixels)
                fh.flush()
                os.fsync(fh.fileno())
            answer = json.dumps({"store_s": syncing - began, "input_sync_s": writing - syncing,
                                 "result_s": time.perf_counter() - writing}).encode()
            start_response("200 OK", [("Content-Length", str(len(answer)))])
            return [answer]
        fh = open(latest[1], "rb")  # noqa: SIM115 - the server closes it
        start_response("200 OK", [("Content-Length", str(latest[1].stat().st_size))])
        return environ["wsgi.file_wrapper"](fh, 1 << 20)

    return app


def _floor_server(port: int, folder: str) -> None:
    """`python -m bench.bench_core --floor PORT FOLDER`: the floor app under waitress with the
    settings `aiedit serve` uses."""
    import waitress

    from aiedit.cli import waitress_settings
    from aiedit.config import Config

    waitress.serve(_floor_app(Path(folder)), host="127.0.0.1", port=port,
                   **waitress_settings(Config.load()))


class TransferFloor:
    """The floor app in a process of its own; `call()` times the raw inpaint row's transfers
    through it once: the upload, a durable result of the image's size and its download, with
    the plugins' client plumbing (urllib, a connection per request). The inputs' sync is left
    out (a server can overlap it with the fill), so this is a floor, not an estimate."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_core", "--floor", str(self.port), str(folder)],
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "AIEDIT_DATA_DIR": str(folder)})
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the transfer floor's server did not start") from None
                time.sleep(0.05)

    def call(self, body: bytes, result_bytes: int) -> float:
        import urllib.request

        started = time.perf_counter()
        request = urllib.request.Request(self.url + "/job", data=body, method="POST",
                                         headers={"X-Result-Bytes": str(result_bytes)})
        with urllib.request.urlopen(request, timeout=60) as resp:
            overlappable = json.loads(resp.read())["input_sync_s"]
        with urllib.request.urlopen(self.url + "/result", timeout=60) as resp:
            assert len(resp.read()) == result_bytes
        return time.perf_counter() - started - overlappable

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _raw_socket_roundtrip(payload: bytes) -> float:
    """Send `payload` to a loopback socket and receive it back: the floor for moving these bytes."""

    def serve(listener):
        conn, _ = listener.accept()
        with conn:
            received = bytearray()
            while len(received) < len(payload):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                received += chunk
            conn.sendall(received)

    def once():
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            thread = threading.Thread(target=serve, args=(listener,))
            thread.start()
            with socket.create_connection(listener.getsockname()) as client:
                client.sendall(payload)
                got = 0
                while got < len(payload):
                    got += len(client.recv(1 << 20))
            thread.join()

    return best_of(REPEATS, once)


def _http_bulk_roundtrip(server, width: int, height: int) -> float:
    """Upload raw RGBA (POST until 202) + download the same-size result as raw RGBA."""
    payload = noise_image(width, height, seed=3).tobytes()
    raw = {"image": {"width": width, "height": height}}
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        job = _post(
            server,
            "upscale",
            {"image": payload},
            raw=raw,
            params={"scale": 1},
            model="classic-lanczos",
        )
        upload = time.perf_counter() - started
        job = _wait(server, job["id"])
        started = time.perf_counter()
        data = requests.get(
            server.url + job["results"][0]["url"],
            params={"format": "rgba"},
            timeout=120,
            stream=True,
        ).raw.read()
        download = time.perf_counter() - started
        assert len(data) == len(payload)
        best = min(best, upload + download)
        requests.delete(f"{server.url}/v1/jobs/{job['id']}", timeout=30)
    return best


def _startup(data_dir: Path) -> tuple[float, float]:
    """(first start on an empty folder, best later start on the same folder: its database is
    current, which is the start a user waits for every day). The server's bytecode is brought
    up to date first, as `make` leaves it and as Python's own cache keeps it between a user's
    starts (unless PYTHONDONTWRITEBYTECODE is set, when every start would compile it)."""
    import compileall

    import aiedit

    compileall.compile_dir(Path(aiedit.__file__).parent, quiet=1)
    server = LiveServer(data_dir / "start")
    started = time.perf_counter()
    server.start()
    first = time.perf_counter() - started
    server.stop()
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        server.start()
        best = min(best, time.perf_counter() - started)
        server.stop()
    return first, best


def main() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "data").start()
        floor = TransferFloor(Path(tmp) / "floor")
        try:
            hole = 160
            image, mask = _inpaint_inputs(hole)
            in_process, run, raw, png, transfers = _http_inpaint(server, image, mask, floor)
            name = f"1024² classic inpaint, {hole}² hole"
            rows += [
                Row(
                    f"{name}: end to end, raw RGBA up+download ÷ in-process",
                    raw,
                    in_process,
                    target=1.25,
                    note=f"+{(raw - in_process) * 1000:.0f} ms; what the plugins do",
                ),
                Row(
                    f"{name}: its transfers alone (a bare app: upload, durable result, "
                    "download) ÷ in-process",
                    transfers,
                    in_process,
                    note=f"{transfers * 1000:.0f} ms of the {(1.25 - 1) * in_process * 1000:.0f}"
                         " ms the row above may add",
                ),
                Row(
                    f"{name}: end to end, PNG up+download ÷ in-process",
                    png,
                    in_process,
                    note="PNG coding on both sides included",
                ),
                Row(
                    f"{name}: the job's own run time (started→finished) ÷ in-process",
                    run,
                    in_process,
                    note="reads inputs, stores the result durably",
                ),
            ]
            bulk = _http_bulk_roundtrip(server, 4096, 4096)
        finally:
            floor.close()
            server.stop()
        first_start, startup = _startup(Path(tmp))
    floor = _raw_socket_roundtrip(np.zeros(4096 * 4096 * 4, np.uint8).tobytes())
    return [
        *rows,
        Row(
            "4096² raw RGBA upload (until 202) + download ÷ raw loopback socket",
            bulk,
            floor,
            target=3.0,
            note="inputs are on disk before the 202",
        ),
        Row(
            "aiedit serve start to /v1/health, database current ÷ 1.0 s budget",
            startup,
            1.0,
            target=1.0,
            note=f"first start on an empty folder (creates the database): {first_start:.2f} s",
        ),
    ]


if __name__ == "__main__" and sys.argv[1:2] == ["--floor"]:  # TransferFloor's server
    _floor_server(int(sys.argv[2]), sys.argv[3])
