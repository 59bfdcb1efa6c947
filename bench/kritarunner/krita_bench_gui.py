"""Run by kritarunner for bench_krita: time what the plugin does on Krita's GUI thread for one
job on a big deep layer (read, then write back), with the network and pixel conversion on a
worker thread as in the docker. Writes ``result.json`` (kritarunner always exits 0)."""

import json
import os
import threading
import time
import traceback
from array import array


def __main__(args):
    orders = json.load(open(args[0]))
    report = {"error": None}
    try:
        report.update(_run(orders))
    except BaseException:  # noqa: BLE001 - everything must reach the report
        report["error"] = traceback.format_exc()
    with open(os.path.join(orders["out_dir"], "result.json"), "w") as f:
        json.dump(report, f, indent=1)


def _gradient(size):
    """A 16-bit BGRA gradient: every row a ramp of distinct values."""
    row = array("H", bytes(size * 8))
    for x in range(size):
        v = x * 65535 // (size - 1)
        row[4 * x:4 * x + 4] = array("H", [65535 - v, v // 2 + 10000, v, 65535])
    return row.tobytes() * size


def _run(orders):
    from krita import Krita, Selection
    from PyQt5.QtCore import QByteArray

    from aiedit import jobs, scripting
    from aiedit.aiedit_client import Client

    size, profile = orders["size"], orders["profile"]
    doc = Krita.instance().createDocument(size, size, "bench", "RGBA", "U16", profile, 72.0)
    doc.setBatchmode(True)
    doc.topLevelNodes()[0].setPixelData(QByteArray(_gradient(size)), 0, 0, size, size)
    selection = Selection()
    selection.select(0, 0, size, size, 255)
    doc.setSelection(selection)
    doc.refreshProjection()
    doc.waitForDone()

    client = Client(orders["server_url"], timeout=600)
    op = client.operation("inpaint")
    started = time.perf_counter()
    spec = scripting.prepare(doc, op, model="classic-telea",
                             params={"strength": 0.0, "context_margin": 0})
    read_s = time.perf_counter() - started

    box = {}

    def work():
        try:
            box["outcome"] = jobs.execute(client, spec)
        except BaseException as error:  # noqa: BLE001
            box["error"] = error

    started = time.perf_counter()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    worker_s = time.perf_counter() - started
    if "error" in box:
        raise box["error"]

    started = time.perf_counter()
    if os.environ.get("AIEDIT_BENCH_PROFILE"):
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        [node] = profiler.runcall(scripting.apply_outcome, doc, spec, box["outcome"])
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    else:
        [node] = scripting.apply_outcome(doc, spec, box["outcome"])
    doc.waitForDone()
    write_s = time.perf_counter() - started
    return {"read_s": read_s, "worker_s": worker_s, "write_s": write_s,
            "gui_s": read_s + write_s, "node": node.name(),
            "depth": box["outcome"].raws[0].depth}
