"""Run by kritarunner (Debian's system Python, inside Krita): open an image, optionally select a
rectangle, run the plugin's ``aiedit.run``, save .kra and .png, and write what happened to
``result.json``. kritarunner always exits 0, so the test reads that file.

Argument: ORDERS_JSON with image, out_dir, server_url, operation, model, params, selection.
"""

import json
import os
import traceback


def __main__(args):
    orders = json.load(open(args[0]))
    report = {"error": None}
    try:
        report.update(_run(orders))
    except BaseException:  # noqa: BLE001 - everything must reach the report
        report["error"] = traceback.format_exc()
    with open(os.path.join(orders["out_dir"], "result.json"), "w") as f:
        json.dump(report, f, indent=1)


def _run(orders):
    from krita import InfoObject, Krita, Selection

    import aiedit

    doc = Krita.instance().openDocument(orders["image"])
    doc.setBatchmode(True)
    if orders.get("selection"):
        selection = Selection()
        selection.select(*orders["selection"], 255)
        doc.setSelection(selection)
    nodes = aiedit.run(doc, orders["operation"], model=orders["model"],
                       server_url=orders["server_url"], params=orders.get("params"))
    doc.refreshProjection()
    doc.waitForDone()
    out_dir = orders["out_dir"]
    return {
        "plugin_file": aiedit.__file__,
        "nodes": [{"name": n.name(), "type": n.type(),
                   "bounds": list(n.bounds().getRect())} for n in nodes],
        "top_level": [n.name() for n in doc.topLevelNodes()],
        "size": [doc.width(), doc.height()],
        "saved_kra": bool(doc.saveAs(os.path.join(out_dir, "out.kra"))),
        "exported_png": bool(doc.exportImage(os.path.join(out_dir, "out.png"), InfoObject())),
    }
