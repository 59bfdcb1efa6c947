"""The shared client's deep colour (16-bit pixels), event stream and step previews: pure
helpers, scripted local HTTP servers, and a live `aiedit serve`."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from aiedit_client import (
    Client,
    Event,
    JobCanceled,
    Mask,
    Pixels,
    Region,
    Result,
    crop_pixels,
    decode_png,
    encode_png,
    mask_into_alpha,
    swap_red_blue,
)


def gradient16(width: int, height: int) -> Pixels:
    levels = np.linspace(0, 65535, height).round().astype(np.uint16)
    rgba = np.empty((height, width, 4), np.uint16)
    rgba[..., 0] = levels[:, None]
    rgba[..., 1] = levels[::-1, None]
    rgba[..., 2] = 12345
    rgba[..., 3] = 65535 - levels[:, None] // 8
    return Pixels(width, height, rgba.astype("<u2").tobytes(), 16)


def as_array(pixels: Pixels) -> np.ndarray:
    dtype = "<u2" if pixels.depth == 16 else np.uint8
    return np.frombuffer(pixels.data, dtype).reshape(pixels.height, pixels.width, 4)


# --- pure helpers ------------------------------------------------------------------------------


def test_16_bit_pixels_need_8_bytes_a_pixel():
    Pixels(2, 2, bytes(32), 16)
    with pytest.raises(ValueError, match="needs 32 bytes, got 16"):
        Pixels(2, 2, bytes(16), 16)
    with pytest.raises(ValueError, match="depth must be 8 or 16"):
        Pixels(2, 2, bytes(16), 12)
    assert Pixels(1, 1, bytes(8), 16).format == "rgba16"
    assert Pixels(1, 1, bytes(4)).format == "rgba8"


def test_16_to_8_bits_rounds_every_value_like_the_server():
    data = np.arange(65536, dtype="<u2").tobytes()
    pixels = Pixels(128, 128, data, 16)
    expected = ((np.arange(65536, dtype=np.uint32) + 128) // 257).astype(np.uint8)
    assert pixels.to_8bit().data == expected.tobytes()
    wide = Pixels(64, 64, bytes(range(256)) * 64).to_16bit()
    assert np.array_equal(np.frombuffer(wide.data, "<u2"),
                          np.tile(np.arange(256, dtype=np.uint16) * 257, 64))
    assert wide.to_8bit().data == bytes(range(256)) * 64


def test_16_bit_png_round_trips_and_other_decoders_read_it():
    pixels = gradient16(33, 70)
    png = encode_png(pixels, level=1)
    assert decode_png(png, depth=16) == pixels
    read = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint16 and np.array_equal(read[..., [2, 1, 0, 3]], as_array(pixels))
    assert decode_png(png).data == pixels.to_8bit().data


def test_8_bit_png_decodes_to_16_bits_exactly():
    pixels = Pixels(4, 3, bytes(range(48)))
    assert decode_png(encode_png(pixels), depth=16) == pixels.to_16bit()


def test_crop_swap_and_mask_work_on_16_bit_pixels():
    pixels = gradient16(10, 8)
    crop = crop_pixels(pixels, Region(2, 3, 4, 2))
    assert crop.depth == 16 and np.array_equal(as_array(crop), as_array(pixels)[3:5, 2:6])
    swapped = as_array(Pixels(10, 8, swap_red_blue(pixels.data, depth=16), 16))
    assert np.array_equal(swapped, as_array(pixels)[..., [2, 1, 0, 3]])
    mask = Mask(10, 8, bytes([0, 128, 255, 64] * 20))
    masked = as_array(mask_into_alpha(pixels, mask))
    weights = np.frombuffer(mask.data, np.uint8).reshape(8, 10).astype(np.int64)
    expected = (as_array(pixels)[..., 3].astype(np.int64) * weights + 127) // 255
    assert np.array_equal(masked[..., 3], expected)
    assert np.array_equal(masked[..., :3], as_array(pixels)[..., :3])


# --- a scripted server -------------------------------------------------------------------------


class Scripted:
    """A local HTTP server: ``routes[(method, path)]`` is a function(handler, body) that answers;
    every request (with its body) is recorded."""

    def __init__(self):
        self.requests, self.routes, self.headers = [], {}, []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                scripted.requests.append((self.command, self.path, body))
                scripted.headers.append(dict(self.headers))
                route = scripted.routes.get((self.command, self.path))
                if route is None:
                    return send(self, 404, {"code": "not_found", "status": 404,
                                            "message": f"no route {self.path}"})
                route(self, body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def json(self, method, path, payload, status=200):
        self.routes[(method, path)] = lambda h, body: send(h, status, payload)
        if (method, path) == ("POST", "/v1/jobs"):  # all-raw submissions go to /v1/jobs/raw
            self.routes[(method, path + "/raw")] = self.routes[(method, path)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def send(handler, status, payload, content_type="application/json", headers=None):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


def sse(*events) -> bytes:
    out = "retry: 2000\n\n: heartbeat\n\n"
    for name, data in events:
        out += f"event: {name}\ndata: {json.dumps(data)}\n\n"
    return out.encode()


def operation(op_id, formats, max_upload=288 << 20):
    return {"operations": [{"id": op_id, "input_formats": formats,
                            "limits": {"max_upload_bytes": max_upload}}]}


@pytest.fixture
def scripted():
    server = Scripted()
    yield server
    server.close()


def submitted(scripted) -> tuple[dict, dict]:
    """(the request JSON, {part name: bytes}) of the last POST /v1/jobs (multipart) or
    /v1/jobs/raw (the request in a header, the raw parts back to back as the body)."""
    recorded = zip(scripted.requests, scripted.headers, strict=False)
    path, body, headers = [(p, b, h) for (m, p, b), h in recorded
                           if m == "POST" and p in ("/v1/jobs", "/v1/jobs/raw")][-1]
    if path == "/v1/jobs/raw":
        request, parts, offset = json.loads(headers["Aiedit-Request"]), {}, 0
        for name in ("image", "reference", "mask"):
            if name in request["raw"]:
                size = request["raw"][name]
                pixel = {"rgba16": 8, "gray8": 1}.get(size.get("format"), 1 if name == "mask"
                                                                          else 4)
                parts[name] = body[offset : offset + size["width"] * size["height"] * pixel]
                offset += len(parts[name])
        assert offset == len(body)
        return request, parts
    parts = {}
    for chunk in body.split(b"--aiedit-")[1:-1]:
        head, _, content = chunk.partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        parts[name] = content[:-2]
    return json.loads(parts.pop("request")), parts


JOB = {"id": "j1", "state": "queued", "queue_position": 0, "results": [],
       "progress": {"step": 0, "total": 0, "fraction": 0, "stage": "queued", "eta_s": None}}


@pytest.mark.parametrize("formats, sent_format, sent_bytes", [
    (["rgba8", "rgba16"], "rgba16", 8), (["rgba8"], None, 4), (None, None, 4)])
def test_upload_format_follows_the_operations_input_formats(scripted, formats, sent_format,
                                                             sent_bytes):
    ops = operation("upscale", formats)
    if formats is None:  # a server from before deep colour
        del ops["operations"][0]["input_formats"]
    scripted.json("GET", "/v1/operations", ops)
    scripted.json("POST", "/v1/jobs", JOB, 202)
    pixels = gradient16(6, 5)
    Client(scripted.url).submit("upscale", image=pixels)
    request, parts = submitted(scripted)
    assert request["raw"]["image"].get("format") == sent_format
    assert len(parts["image"]) == 6 * 5 * sent_bytes
    if sent_bytes == 4:
        assert parts["image"] == pixels.to_8bit().data


def test_an_upload_over_max_upload_bytes_goes_as_a_16_bit_png(scripted):
    scripted.json("GET", "/v1/operations", operation("upscale", ["rgba8", "rgba16"],
                                                     max_upload=(1 << 20) + 4000))
    scripted.json("POST", "/v1/jobs", JOB, 202)
    flat = Pixels(40, 40, bytes(range(8)) * 1600, 16)  # 12800 bytes raw, compresses well
    Client(scripted.url).submit("upscale", image=flat)
    request, parts = submitted(scripted)
    assert "image" not in request.get("raw", {})
    assert decode_png(parts["image"], depth=16) == flat


def test_fetch_pixels_asks_for_the_results_depth(scripted):
    wide = gradient16(3, 2)
    headers = {"X-Image-Width": "3", "X-Image-Height": "2"}
    scripted.routes[("GET", "/r/0?format=rgba16")] = lambda h, b: send(
        h, 200, wide.data, "application/octet-stream", headers)
    scripted.routes[("GET", "/r/0?format=rgba")] = lambda h, b: send(
        h, 200, wide.to_8bit().data, "application/octet-stream", headers)
    client = Client(scripted.url)
    deep = Result(0, "image", 3, 2, 0, 0, None, scripted.url + "/r/0", depth=16)
    assert client.fetch_pixels(deep) == wide
    assert client.fetch_pixels(deep, depth=8) == wide.to_8bit()
    shallow = Result(0, "image", 3, 2, 0, 0, None, scripted.url + "/r/0", depth=8)
    assert client.fetch_pixels(shallow, depth=16) == wide.to_8bit().to_16bit()


FINAL = {**JOB, "state": "succeeded", "queue_position": None,
         "progress": {"step": 4, "total": 4, "fraction": 1, "stage": "done", "eta_s": 0}}


def test_wait_follows_the_event_stream_and_fetches_previews(scripted):
    progress = [{"state": "running", "step": s, "total": 4, "fraction": s / 4,
                 "stage": "denoising", "eta_s": 1, "queue_position": 0} for s in (1, 2, 3)]
    stream = sse(("progress", progress[0]), ("progress", progress[1]),
                 ("preview", {"step": 2, "url": "/v1/jobs/j1/preview"}),
                 ("progress", progress[2]), ("state", FINAL))
    scripted.routes[("GET", "/v1/jobs/j1/events")] = lambda h, b: send(
        h, 200, stream, "text/event-stream")
    png = encode_png(Pixels(2, 2, bytes(16)))
    scripted.routes[("GET", "/v1/jobs/j1/preview")] = lambda h, b: send(
        h, 200, png, "image/png", {"X-Preview-Step": "2"})
    seen, previews = [], []
    job = Client(scripted.url).wait("j1", on_progress=lambda j: seen.append(j),
                                    on_preview=previews.append)
    assert job == FINAL
    assert [j["progress"]["step"] for j in seen] == [1, 2, 3, 4]
    assert seen[0]["state"] == "running" and seen[-1] is job
    assert [(p.step, p.png) for p in previews] == [(2, png)]
    assert previews[0].pixels() == Pixels(2, 2, bytes(16))
    assert not any("wait=" in path for _, path, _ in scripted.requests)  # no long-poll


def test_events_yields_parsed_events(scripted):
    stream = sse(("progress", {"state": "queued", "step": 0}), ("state", FINAL))
    scripted.routes[("GET", "/v1/jobs/j1/events")] = lambda h, b: send(
        h, 200, stream, "text/event-stream")
    events = list(Client(scripted.url).events("j1"))
    assert events == [Event("progress", {"state": "queued", "step": 0}), Event("state", FINAL)]


def test_wait_falls_back_to_long_polls_without_an_event_stream(scripted):
    scripted.json("GET", "/v1/jobs/j1?wait=20", FINAL)  # and no events route: 404 not_found
    seen = []
    assert Client(scripted.url).wait("j1", on_progress=seen.append) == FINAL
    paths = [path for _, path, _ in scripted.requests]
    assert paths == ["/v1/jobs/j1/events", "/v1/jobs/j1?wait=20"]


def test_wait_long_polls_when_the_stream_breaks_off(scripted):
    running = {"state": "running", "step": 1, "total": 4, "stage": "denoising",
               "queue_position": 0}
    scripted.routes[("GET", "/v1/jobs/j1/events")] = lambda h, b: send(
        h, 200, sse(("progress", running)), "text/event-stream")  # ends without a state
    scripted.json("GET", "/v1/jobs/j1?wait=20", FINAL)
    assert Client(scripted.url).wait("j1") == FINAL


def test_cancel_while_following_the_stream_is_prompt(scripted):
    def endless(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        handler.wfile.write(sse(("progress", {"state": "running", "step": 1, "total": 9})))
        handler.wfile.flush()
        try:
            for _ in range(100):
                time.sleep(0.1)
                handler.wfile.write(b": heartbeat\n\n")
                handler.wfile.flush()
        except OSError:
            pass

    scripted.routes[("GET", "/v1/jobs/j1/events")] = endless
    scripted.json("GET", "/v1/jobs/j1", {**JOB, "state": "running"})
    scripted.json("DELETE", "/v1/jobs/j1?cancel_only=true", {**JOB, "state": "canceled"}, 202)
    asked = time.monotonic() + 0.5
    started = time.monotonic()
    with pytest.raises(JobCanceled):
        Client(scripted.url).wait("j1", should_cancel=lambda: time.monotonic() > asked)
    assert time.monotonic() - started < 3.0
    assert ("DELETE", "/v1/jobs/j1?cancel_only=true", b"") in scripted.requests


# --- a live server -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_identity_round_trip_at_16_bits_is_bit_exact(live_server):
    client = Client(live_server.url)
    assert client.takes_16bit("upscale") and not client.takes_16bit("preprocess")
    pixels = gradient16(129, 257)
    job = client.submit("upscale", image=pixels, region=Region(3, 4, 129, 257),
                        model="classic-lanczos", params={"scale": 1})
    job = client.wait(job["id"])
    (result,) = client.results(job)
    assert result.depth == 16 and (result.x, result.y) == (3, 4)
    assert client.fetch_pixels(result) == pixels
    png = client.fetch_bytes(result)
    assert decode_png(png, depth=16) == pixels


@pytest.mark.e2e
def test_upscale_of_a_16_bit_gradient_keeps_its_levels(live_server):
    client = Client(live_server.url)
    pixels = gradient16(8, 1500)
    job = client.wait(client.submit("upscale", image=pixels, model="classic-lanczos",
                                    params={"scale": 2})["id"])
    out = as_array(client.fetch_pixels(client.results(job)[0]))
    assert out.shape == (3000, 16, 4) and len(np.unique(out[:, 8, 0])) >= 1024


@pytest.mark.e2e
def test_16_bit_pixels_for_an_8_bit_operation_are_sent_rounded(live_server):
    client = Client(live_server.url)
    pixels = gradient16(24, 24)
    job = client.wait(client.submit("preprocess", image=pixels, model="classic-canny",
                                    params={"kind": "canny"})["id"])
    (result,) = client.results(job)
    assert result.depth == 8
    assert client.fetch_pixels(result).depth == 8


@pytest.mark.e2e
def test_wait_over_the_live_event_stream(live_server):
    client = Client(live_server.url)
    pixels = Pixels(16, 16, bytes([40, 80, 120, 255]) * 256)
    job = client.submit("upscale", image=pixels, model="classic-lanczos", params={"scale": 2})
    events = list(client.events(job["id"]))
    assert events[-1].name == "state" and events[-1].data["state"] == "succeeded"
    seen = []
    final = client.wait(client.submit("upscale", image=pixels, model="classic-lanczos",
                                      params={"scale": 2})["id"], on_progress=seen.append)
    assert final["state"] == "succeeded" and seen[-1] is final


@pytest.mark.e2e
@pytest.mark.ml
def test_wait_shows_step_previews_of_a_live_diffusion_job(tiny_server):
    client = Client(tiny_server.url)
    previews, steps = [], []
    job = client.submit("generate", model="tiny-sdxl", region=Region(0, 0, 64, 64),
                        params={"prompt": "a lighthouse", "seed": 3, "steps": 20})
    final = client.wait(job["id"], on_preview=previews.append,
                        on_progress=lambda j: steps.append(j["progress"]["step"]))
    assert final["state"] == "succeeded"
    assert previews, "no step preview arrived during a 20-step job"
    assert all(0 < p.step < 20 for p in previews)
    assert [p.step for p in previews] == sorted({p.step for p in previews})
    picture = previews[-1].pixels()
    assert max(picture.width, picture.height) <= 256 and len(set(picture.data)) > 1
    assert len(steps) >= 3
