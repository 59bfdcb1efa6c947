"""Test helper loaded by Krita's GUI next to aiedit: once the window is up it opens an image,
selects a rectangle, triggers the ``aiedit_generate`` action, waits for the docker's result,
triggers ``aiedit_apply``, saves the document and writes ``report.json``; then Krita exits.

Reads its orders from the JSON file named by ``AIEDIT_SMOKE_ORDERS``.
"""

import json
import os
import time
import traceback

from krita import Krita, Selection
from PyQt5.QtCore import QTimer

ORDERS = os.environ.get("AIEDIT_SMOKE_ORDERS")
state = {"report": {"steps": []}, "started": None}


def step(name, **info):
    state["report"]["steps"].append(dict(info, step=name, t=round(time.monotonic(), 2)))


def finish(error=None):
    orders = json.load(open(ORDERS))
    state["report"]["error"] = error
    with open(os.path.join(orders["out_dir"], "report.json"), "w") as f:
        json.dump(state["report"], f, indent=1)
    os._exit(0)


def guarded(function):
    def run():
        try:
            function()
        except BaseException:  # noqa: BLE001
            finish(traceback.format_exc())
    return run


@guarded
def start():
    from aiedit.docker import live_dockers

    orders = json.load(open(ORDERS))
    app = Krita.instance()
    dockers = live_dockers()
    step("dockers", count=len(dockers), titles=[d.windowTitle() for d in dockers],
         in_window=[d.objectName() for d in app.dockers() if "aiedit" in d.objectName()])
    doc = app.openDocument(orders["image"])
    app.activeWindow().addView(doc)
    selection = Selection()
    x, y, w, h = orders["selection"]
    if orders.get("soft"):  # a horizontal ramp 1..255 across the rectangle
        from PyQt5.QtCore import QByteArray

        ramp = bytes(1 + 254 * i // (w - 1) for i in range(w))
        selection.setPixelData(QByteArray(ramp * h), x, y, w, h)
    else:
        selection.select(x, y, w, h, 255)
    doc.setSelection(selection)
    state["doc"] = doc
    state["layers_before"] = len(doc.topLevelNodes())
    step("document", active=app.activeDocument() is not None)
    wait_connected()


@guarded
def wait_connected():
    from aiedit.docker import live_dockers

    docker = live_dockers()[-1]
    if docker.client is None:
        if time.monotonic() - state["started"] > 60:
            return finish(f"docker never connected: {docker.status.text()}")
        return QTimer.singleShot(200, wait_connected)
    step("connected", status=docker.status.text(),
         operation=docker.operation_combo.currentData(), model=docker.model_combo.currentData())
    if json.load(open(ORDERS)).get("mode") == "live":
        return start_live(docker)
    Krita.instance().action("aiedit_generate").trigger()
    step("generate triggered", progress=docker.progress.format())
    QTimer.singleShot(200, wait_result)


@guarded
def wait_result():
    from aiedit.docker import live_dockers

    docker = live_dockers()[-1]
    if docker.results.count() == 0:
        if docker.job_thread is None and docker.progress.format() != "Done":
            return finish(f"generate did not run: {docker.progress.format()}")
        if time.monotonic() - state["started"] > 90:
            return finish("no result within 90 s")
        return QTimer.singleShot(200, wait_result)
    step("result", count=docker.results.count(), progress=docker.progress.format())
    orders = json.load(open(ORDERS))
    conflicts = state["report"].setdefault("conflicts", [])
    docker._ask_conflict = lambda pending, error: conflicts.append(str(error)) or "keep"
    Krita.instance().action("aiedit_apply").trigger()
    doc = state["doc"]
    doc.waitForDone()
    orders = json.load(open(ORDERS))
    x, y, w, h = orders["selection"]
    state["report"]["layers"] = [
        {"name": n.name(), "type": n.type(), "bounds": list(n.bounds().getRect()),
         "children": [{"name": c.name(), "type": c.type(),
                       "values": list(bytes(c.pixelData(x, y, w, h)))}
                      for c in n.childNodes()]}
        for n in doc.topLevelNodes()]
    selection = doc.selection()
    state["report"]["selection_after"] = \
        list(bytes(selection.pixelData(x, y, w, h))) if selection is not None else None
    doc.setBatchmode(True)
    state["report"]["saved"] = bool(doc.saveAs(os.path.join(orders["out_dir"], "gui.kra")))
    finish()


LIVE_NAME = "aiedit live (not applied)"


def live_pixels():
    x, y, w, h = json.load(open(ORDERS))["selection"]
    state["doc"].waitForDone()  # a replaced live layer's removal may still be under way
    nodes = [n for n in state["doc"].topLevelNodes() if n.name() == LIVE_NAME]
    state["report"]["live_layers_seen"] = max(len(nodes),
                                              state["report"].get("live_layers_seen", 0))
    return None if not nodes else bytes(nodes[-1].pixelData(x, y, w, h))


def start_live(docker):
    """Live mode: wait for a frame, paint a block by script, wait for the next, Apply."""
    docker.prompt.setPlainText("a fox")
    docker.strength.setValue(60)
    docker.form.fields["steps"].set(2)
    docker.form.fields["seed"].set(3)
    docker.live_check.setChecked(True)
    state["live_since"] = time.monotonic()
    QTimer.singleShot(200, wait_first_frame)


@guarded
def wait_first_frame():
    from aiedit.docker import live_dockers

    if live_pixels() is None:
        if time.monotonic() - state["live_since"] > 90:
            return finish(f"no live frame: {live_dockers()[-1].progress.format()}")
        return QTimer.singleShot(200, wait_first_frame)
    state["first"] = live_pixels()
    step("first frame")
    from PyQt5.QtCore import QByteArray

    x, y, w, h = json.load(open(ORDERS))["selection"]
    background = next(n for n in state["doc"].topLevelNodes() if n.type() == "paintlayer")
    background.setPixelData(QByteArray(bytes([40, 200, 20, 255]) * (w * h)), x, y, w, h)
    state["doc"].refreshProjection()
    state["stroke_at"] = time.monotonic()
    QTimer.singleShot(200, wait_next_frame)


@guarded
def wait_next_frame():
    from aiedit.docker import live_dockers

    docker = live_dockers()[-1]
    if live_pixels() in (None, state["first"]):
        if time.monotonic() - state["stroke_at"] > 90:
            return finish(f"the live layer did not follow the stroke: {docker.progress.format()}")
        return QTimer.singleShot(200, wait_next_frame)
    step("followed stroke", seconds=round(time.monotonic() - state["stroke_at"], 2))
    x, y, w, h = json.load(open(ORDERS))["selection"]
    node = docker.apply_live()
    state["doc"].waitForDone()
    state["report"]["applied"] = {"name": node.name(), "bounds": list(node.bounds().getRect()),
                                  "equals_live": bytes(node.pixelData(x, y, w, h)) ==
                                  live_pixels()}
    docker.live_check.setChecked(False)
    state["report"]["live_left"] = live_pixels() is not None
    state["report"]["layers"] = [n.name() for n in state["doc"].topLevelNodes()]
    finish()


def window_created():
    state["started"] = time.monotonic()
    QTimer.singleShot(1500, start)


if ORDERS:
    Krita.instance().notifier().windowCreated.connect(window_created)
