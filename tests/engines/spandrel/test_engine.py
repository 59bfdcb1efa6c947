"""The spandrel engine: what is installed, downloads with progress and sha256 checks, verify,
remove, conversion cached once, device and precision."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from functools import partial

import pytest
import torch

from aiedit.engines import spandrel as engine
from aiedit.engines.catalog import Catalog, ModelEntry


@pytest.fixture
def file_server(tmp_path):
    """A static file server on 127.0.0.1 serving `tmp_path / "www"`."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def url_entry(url, sha256="", file="weights.pth"):
    source = {"url": url, "file": file}
    if sha256:
        source["sha256"] = sha256
    return ModelEntry(id="downloaded", name="d", operations=("upscale",), engine="spandrel",
                      source=source)


def test_download_reports_progress_checks_sha256_and_installs(file_server, tiny_compact,
                                                              models_dir):
    root, base = file_server
    data = tiny_compact.read_bytes()
    (root / "w.pth").write_bytes(data)
    entry = url_entry(f"{base}/w.pth", hashlib.sha256(data).hexdigest())
    assert not engine.is_installed(entry)
    reports = []
    path = engine.download(entry, lambda done, total: reports.append((done, total)))
    assert path == models_dir / "weights.pth" and path.read_bytes() == data
    assert reports[0] == (0, len(data)) and reports[-1] == (len(data), len(data))
    assert engine.is_installed(entry)
    assert engine.verify(entry) == []
    model = engine.load(entry, "cpu")  # "auto" would pick a GPU where there is one
    assert (model.device, model.info["dtype"], model.info["scale"]) == ("cpu", "float32", 4)
    assert model.size_bytes > 0
    assert engine.remove(entry) and not engine.is_installed(entry)


def test_a_download_with_the_wrong_sha256_leaves_nothing(file_server, models_dir):
    root, base = file_server
    (root / "w.pth").write_bytes(b"not the weights")
    entry = url_entry(f"{base}/w.pth", "0" * 64)
    with pytest.raises(engine.ModelFileError, match="sha256"):
        engine.download(entry, lambda done, total: None)
    assert list(models_dir.glob("weights.pth*")) == []


def test_verify_says_when_the_catalog_has_no_hash(file_server):
    root, base = file_server
    (root / "w.pth").write_bytes(b"x")
    entry = url_entry(f"{base}/w.pth")
    assert "missing" in engine.verify(entry)[0]
    engine.download(entry, lambda done, total: None)
    assert "no sha256" in engine.verify(entry)[0]


def test_bundled_ncnn_models_are_installed_and_converted_once(models_dir):
    catalog = Catalog.load()
    entry = catalog.get("realesr-animevideov3-x4-ncnn")
    assert engine.is_installed(entry)
    path = engine.ensure_converted(entry)
    stamp = path.stat().st_mtime_ns
    assert engine.ensure_converted(entry).stat().st_mtime_ns == stamp
    assert path.parent.parent == models_dir
    assert engine.verify(entry) == []


def test_url_catalog_entries_are_not_installed_without_their_file():
    catalog = Catalog.load()
    for model_id in ("realesrgan-x4plus", "gfpgan-1.4", "codeformer", "scunet-real-psnr"):
        entry = catalog.get(model_id)
        assert entry.source["sha256"] and entry.download_size > 0
        assert not engine.is_installed(entry)
    assert catalog.get("codeformer").non_commercial


def test_a_user_file_is_never_removed(tiny_compact):
    entry = ModelEntry(id="mine", name="m", operations=("upscale",), engine="spandrel",
                       source={"path": str(tiny_compact)})
    assert engine.remove(entry) is False and tiny_compact.exists()


def test_a_file_spandrel_does_not_know_fails_clearly(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"something.weight": torch.zeros(3)}, path)
    entry = ModelEntry(id="odd", name="o", operations=("upscale",), engine="spandrel",
                       source={"path": str(path)})
    with pytest.raises(engine.ModelFileError, match="not an architecture spandrel knows"):
        engine.load(entry, "cpu")


def test_a_job_for_weights_that_cannot_be_fetched_fails_saying_how_to_get_them(tmp_path):
    from aiedit.ops.base import OperationError

    entry = url_entry("http://127.0.0.1:9/nothing.pth", "0" * 64, file="never-fetched.pth")
    with pytest.raises(OperationError) as raised:
        engine.prepare(entry, lambda done, total: None)
    assert raised.value.code == "model_not_available"
    assert "aiedit models pull" in raised.value.message


def test_two_jobs_wanting_the_same_model_download_it_once(tmp_path, tiny_compact, models_dir):
    """Both callers wait on the model's download lock; the second finds the file in place."""
    data = tiny_compact.read_bytes()
    requests_seen = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests_seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), 4096):  # slow enough for the two to overlap
                self.wfile.write(data[i:i + 4096])
                time.sleep(0.01)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        entry = ModelEntry(id="download-once", name="d", operations=("upscale",),
                           engine="spandrel", download_size=len(data),
                           source={"url": f"http://127.0.0.1:{server.server_address[1]}/w.pth",
                                   "sha256": hashlib.sha256(data).hexdigest(),
                                   "file": "download-once.pth"})
        reports: dict[int, list] = {0: [], 1: []}
        errors = []

        def job(n):
            try:
                engine.prepare(entry, lambda done, total, n=n: reports[n].append((done, total)))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=job, args=(n,)) for n in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and requests_seen == ["/w.pth"]
        assert engine.is_installed(entry)
        assert all(reports[n] for n in (0, 1)), "the waiting job showed no progress"
    finally:
        server.shutdown()
        engine.remove(entry)


def test_a_release_file_of_the_wrong_size_is_not_installed(tiny_compact, models_dir):
    data = tiny_compact.read_bytes()
    entry = ModelEntry(id="sized", name="s", operations=("upscale",), engine="spandrel",
                       download_size=len(data),
                       source={"url": "http://127.0.0.1:9/none.pth", "file": "sized.pth"})
    path = engine.weights_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])  # copied in half-way
    assert not engine.is_installed(entry)
    path.write_bytes(data)
    assert engine.is_installed(entry)
    engine.remove(entry)
