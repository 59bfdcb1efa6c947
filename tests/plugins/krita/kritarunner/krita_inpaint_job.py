"""Run by kritarunner (Debian's system Python, inside Krita): open an image, select a rectangle,
run the plugin's ``aiedit.run`` inpaint against a live server, save .kra and .png, and write what
happened to ``result.json``. kritarunner always exits 0, so the test reads that file.

Arguments: OUT_DIR SERVER_URL INPUT_PNG X Y W H
"""

import json
import os
import traceback


def __main__(args):
    out_dir, url, source = args[0], args[1], args[2]
    x, y, w, h = (int(v) for v in args[3:7])
    report = {"error": None}
    try:
        report.update(_run(out_dir, url, source, x, y, w, h))
    except BaseException:  # noqa: BLE001 - everything must reach the report
        report["error"] = traceback.format_exc()
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(report, f, indent=1)


def _run(out_dir, url, source, x, y, w, h):
    import aiedit
    from krita import InfoObject, Krita, Selection

    app = Krita.instance()
    doc = app.openDocument(source)
    doc.setBatchmode(True)
    selection = Selection()
    selection.select(x, y, w, h, 255)
    doc.setSelection(selection)
    nodes = aiedit.run(doc, "inpaint", model="classic-telea", server_url=url,
                       params={"feather": 0})
    doc.refreshProjection()
    doc.waitForDone()
    kra = os.path.join(out_dir, "out.kra")
    png = os.path.join(out_dir, "out.png")
    saved_kra = doc.saveAs(kra)
    exported = doc.exportImage(png, InfoObject())
    return {
        "plugin_file": aiedit.__file__,
        "nodes": [{"name": n.name(), "type": n.type(),
                   "bounds": list(n.bounds().getRect())} for n in nodes],
        "top_level": [n.name() for n in doc.topLevelNodes()],
        "saved_kra": bool(saved_kra), "exported_png": bool(exported),
        "color": [doc.colorModel(), doc.colorDepth(), doc.colorProfile()],
    }
