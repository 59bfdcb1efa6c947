"""The client's HTTP behaviour against real local HTTP servers that answer as scripted:
redirects, result URLs on other origins, a server that refuses a cancel."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiedit_client import AieditError, CancelFailed, Client, JobCanceled, Result

KEY = "aiedit_secret_key"
PIXEL = bytes((1, 2, 3, 255))


class Recorder:
    """One HTTP server on 127.0.0.1 and a free port. ``routes`` maps (method, path) to
    (status, headers, body); every request is recorded with its headers."""

    def __init__(self):
        self.requests = []
        self.routes = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                recorder.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers)})
                status, headers, body = recorder.routes.get(
                    (self.command, self.path),
                    (404, {"Content-Type": "application/json"},
                     json.dumps({"code": "not_found", "status": 404,
                                 "message": f"no route {self.path}"}).encode()))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_DELETE = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def route(self, method, path, status=200, headers=None, body=b""):
        self.routes[(method, path)] = (status, headers or {}, body)

    def redirect(self, path, location, status=302):
        self.route("GET", path, status, {"Location": location})

    def pixels(self, path):
        self.route("GET", path, 200, {"Content-Type": "application/octet-stream",
                                      "X-Image-Width": "1", "X-Image-Height": "1"}, PIXEL)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    made = []

    def make():
        made.append(Recorder())
        return made[-1]

    yield make
    for server in made:
        server.close()


def result(url):
    return Result(index=0, kind="image", width=1, height=1, x=0, y=0, seed=None, url=url)


def auth_headers(server):
    return [{k.lower(): v for k, v in r["headers"].items()}.get("authorization")
            for r in server.requests]


def test_a_redirect_to_another_origin_does_not_carry_the_key(servers):
    aiedit, elsewhere = servers(), servers()
    aiedit.redirect("/v1/jobs/j/results/0?format=rgba", elsewhere.url + "/stolen")
    elsewhere.pixels("/stolen")
    pixels = Client(aiedit.url, KEY).fetch_pixels(result("/v1/jobs/j/results/0"))
    assert pixels.data == PIXEL
    assert auth_headers(aiedit) == [f"Bearer {KEY}"]
    assert [r["path"] for r in elsewhere.requests] == ["/stolen"]
    assert auth_headers(elsewhere) == [None], "the API key was forwarded on the redirect"


def test_a_redirect_on_the_same_server_does_not_carry_the_key_either(servers):
    aiedit = servers()
    aiedit.redirect("/v1/health", "/v1/elsewhere", status=307)
    aiedit.route("GET", "/v1/elsewhere", 200, {"Content-Type": "application/json"},
                 b'{"status": "ok"}')
    assert Client(aiedit.url, KEY).health() == {"status": "ok"}
    assert [r["path"] for r in aiedit.requests] == ["/v1/health", "/v1/elsewhere"]
    assert auth_headers(aiedit) == [f"Bearer {KEY}", None]


@pytest.mark.parametrize("make_url", [
    lambda own, other: other + "/v1/jobs/j/results/0",          # another port is another origin
    lambda own, other: other.replace("http:", "https:") + "/x",
    lambda own, other: "@" + other.split("//")[1] + "/x",       # would read as user@host
    lambda own, other: "//" + other.split("//")[1] + "/x",      # scheme-relative
    lambda own, other: "file:///etc/passwd",
])
def test_result_urls_on_another_origin_are_refused(servers, make_url):
    aiedit, elsewhere = servers(), servers()
    url = make_url(aiedit.url, elsewhere.url)
    client = Client(aiedit.url, KEY)
    for fetch in (client.fetch_pixels, client.fetch_bytes):
        with pytest.raises(AieditError) as caught:
            fetch(result(url))
        assert caught.value.code == "foreign_origin"
        message = str(caught.value)
        assert message.startswith(f"Refusing to fetch {url}")
        assert message.endswith(f" — it is not on the aiedit server at {aiedit.url} "
                                "(the server answered with an address on another origin)")
    assert aiedit.requests == [] and elsewhere.requests == []


def test_absolute_result_urls_on_the_servers_own_origin_work(servers):
    aiedit = servers()
    aiedit.pixels("/v1/jobs/j/results/0?format=rgba")
    own = aiedit.url + "/v1/jobs/j/results/0"
    assert Client(aiedit.url + "/", KEY).fetch_pixels(result(own)).data == PIXEL
    assert auth_headers(aiedit) == [f"Bearer {KEY}"]


def test_a_cancel_the_server_refuses_is_reported_not_swallowed(servers):
    aiedit = servers()
    running = {"id": "j1", "state": "running", "progress": {"step": 1, "total": 50}}
    aiedit.route("GET", "/v1/jobs/j1", 200, {"Content-Type": "application/json"},
                 json.dumps(running).encode())
    aiedit.route("DELETE", "/v1/jobs/j1?cancel_only=true", 403,
                 {"Content-Type": "application/json"},
                 json.dumps({"code": "forbidden", "status": 403,
                             "message": "This key may not cancel jobs"}).encode())
    client = Client(aiedit.url, KEY)
    with pytest.raises(CancelFailed) as caught:
        client.wait("j1", should_cancel=lambda: True)
    assert not isinstance(caught.value, JobCanceled)
    assert caught.value.code == "cancel_failed" and caught.value.status == 403
    assert str(caught.value) == ("Could not cancel job j1 on the server, it may still be "
                                 "running: This key may not cancel jobs")
    assert [(r["method"], r["path"]) for r in aiedit.requests] == [
        ("GET", "/v1/jobs/j1"), ("DELETE", "/v1/jobs/j1?cancel_only=true")]


def test_a_cancel_that_cannot_reach_the_server_is_reported(servers):
    aiedit = servers()
    client = Client(aiedit.url, KEY, timeout=2)
    aiedit.close()
    with pytest.raises(CancelFailed, match="Could not cancel job j2 on the server, it may still "
                                           "be running: Cannot reach the aiedit server"):
        client.wait("j2", should_cancel=lambda: True)
