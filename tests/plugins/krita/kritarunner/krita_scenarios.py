"""Run by kritarunner: one scenario of the plugin in real Krita (colour spaces, masks, geometry),
writing what happened to ``result.json`` (kritarunner always exits 0).

Argument: ORDERS_JSON with ``scenario``, ``out_dir``, ``server_url`` and the scenario's settings.
Documents are made here with known pixels, so the test can check every value from outside.
"""

import json
import os
import traceback
from array import array

W, H = 96, 64


def __main__(args):
    orders = json.load(open(args[0]))
    report = {"error": None}
    try:
        report.update(SCENARIOS[orders["scenario"]](orders))
    except BaseException:  # noqa: BLE001 - everything must reach the report
        report["error"] = traceback.format_exc()
    with open(os.path.join(orders["out_dir"], "result.json"), "w") as f:
        json.dump(report, f, indent=1)


# -- documents


def gradient16():
    """A 16-bit RGBA gradient (values 0..65535, RGBA order) of moderate saturation."""
    values = array("H", bytes(W * H * 8))
    for y in range(H):
        for x in range(W):
            i = 4 * (y * W + x)
            values[i] = 13000 + 40000 * x // (W - 1)
            values[i + 1] = 16000 + 30000 * y // (H - 1)
            values[i + 2] = 36000 - 12000 * x // (W - 1)
            values[i + 3] = 65535
    return values


def make_document(model, depth, profile, fill16):
    """A document whose Background holds ``fill16`` (16-bit RGBA values) in its own space."""
    from krita import Krita
    from PyQt5.QtCore import QByteArray

    app = Krita.instance()
    doc = app.createDocument(W, H, "scenario", model, depth, profile, 300.0)
    doc.setBatchmode(True)
    background = doc.topLevelNodes()[0]
    background.setPixelData(QByteArray(native(fill16, depth)), 0, 0, W, H)
    doc.refreshProjection()
    return doc, background


def native(rgba16, depth):
    """16-bit RGBA values as Krita's integer BGRA at ``depth``."""
    bgra = array("H", rgba16)
    bgra[0::4], bgra[2::4] = rgba16[2::4], rgba16[0::4]
    if depth == "U16":
        return bgra.tobytes()
    return bytes((v * 255 + 32767) // 65535 for v in bgra)


def select(doc, x, y, w, h, soft=False):
    from krita import Selection
    from PyQt5.QtCore import QByteArray

    selection = Selection()
    if soft:  # a horizontal ramp 1..255 across the rectangle
        ramp = bytes(1 + 254 * i // (w - 1) for i in range(w))
        selection.setPixelData(QByteArray(ramp * h), x, y, w, h)
    else:
        selection.select(x, y, w, h, 255)
    doc.setSelection(selection)


def as_list16(data, depth):
    if depth == "U16":
        return list(array("H", bytes(data)))
    return [v * 257 for v in bytes(data)]


def describe(node):
    return {"name": node.name(), "type": node.type(), "bounds": list(node.bounds().getRect()),
            "blending": node.blendingMode(),
            "children": [describe(child) for child in node.childNodes()]}


# -- scenarios


def colour_round_trip(orders):
    """inpaint at strength 0 (the server returns its input): the new layer must hold the
    document's own values back, after Krita converted them to sRGB and back."""
    import aiedit
    from aiedit import colour, pixels

    model, depth, profile = orders["space"]
    doc, background = make_document(model, depth, profile, gradient16())
    x, y, w, h = orders["selection"]
    select(doc, x, y, w, h)
    [node] = aiedit.run(doc, "inpaint", model="classic-telea", server_url=orders["server_url"],
                        params={"strength": 0.0, "feather": 0, "context_margin": 0})
    layer = [c for c in node.childNodes() if c.type() == "paintlayer"][0] \
        if node.type() == "grouplayer" else node
    layout = pixels.layout_of(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
    srgb = colour.to_srgb(bytes(background.pixelData(x, y, w, h)), w, h, layout)
    return {
        "doc": [doc.colorModel(), doc.colorDepth(), doc.colorProfile()],
        "layer_space": [layer.colorModel(), layer.colorDepth(), layer.colorProfile()],
        "node": describe(node),
        "original": list(bytes(background.pixelData(x, y, w, h))),
        "written": list(bytes(layer.pixelData(x, y, w, h))),
        "krita_srgb8": list(pixels.to_rgba8(srgb.data, srgb.depth)),
    }


def soft_mask(orders):
    """A soft selection becomes an editable mask whose values are the selection's."""
    import aiedit

    doc, background = make_document("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc", gradient16())
    before = bytes(background.pixelData(0, 0, W, H))
    x, y, w, h = orders["selection"]
    select(doc, x, y, w, h, soft=True)
    [node] = aiedit.run(doc, "inpaint", model="classic-telea", server_url=orders["server_url"],
                        params={"feather": 0})
    mask_layer = next(c for c in node.childNodes() if c.type() == "paintlayer"
                      and c.blendingMode() == "destination-in")
    doc.refreshProjection()
    return {
        "node": describe(node),
        "top_level": [n.name() for n in doc.topLevelNodes()],
        "mask_alpha": list(bytes(mask_layer.pixelData(x, y, w, h))[3::4]),
        "selection": list(bytes(doc.selection().pixelData(x, y, w, h))),
        "background_unchanged": bytes(background.pixelData(0, 0, W, H)) == before,
        "saved_kra": bool(doc.saveAs(os.path.join(orders["out_dir"], "out.kra"))),
    }


def two_outpaints(orders):
    """Two outpaints read from the same canvas, applied one after the other."""
    from aiedit import jobs, scripting
    from aiedit.aiedit_client import Client

    doc, background = make_document("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc", gradient16())
    client = Client(orders["server_url"])
    op = client.operation("outpaint")
    specs = [scripting.prepare(doc, op, model="classic-telea", params=params)
             for params in orders["params"]]
    outcomes = [jobs.execute(client, spec) for spec in specs]
    nodes, sizes = [], []
    for spec, outcome in zip(specs, outcomes, strict=True):
        [node] = scripting.apply_outcome(doc, spec, outcome)
        nodes.append(node)
        sizes.append([doc.width(), doc.height()])
    doc.refreshProjection()
    size = (doc.width(), doc.height())
    return {
        "sizes": sizes,
        "nodes": [describe(n) for n in nodes],
        "layers": {n.name() + f" #{i}": list(bytes(n.pixelData(0, 0, *size)))
                   for i, n in enumerate(nodes)},
        "background": list(bytes(background.pixelData(0, 0, *size))),
        "original": list(native(gradient16(), "U8")),
    }


def document_changes(orders):
    """A job whose document is cropped, or closed, before its result is applied."""
    from aiedit import host, jobs, scripting
    from aiedit.aiedit_client import Client

    client = Client(orders["server_url"])
    op = client.operation("inpaint")
    report = {}
    doc, _ = make_document("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc", gradient16())
    x, y, w, h = orders["selection"]
    select(doc, x, y, w, h)
    spec = scripting.prepare(doc, op, model="classic-telea", params={"feather": 0})
    outcome = jobs.execute(client, spec)
    report["layers_before"] = len(doc.topLevelNodes())
    doc.resizeImage(8, 4, W - 8, H - 4)
    doc.waitForDone()
    try:
        scripting.apply_outcome(doc, spec, outcome)
        report["cropped"] = "no error"
    except host.CanvasChanged as error:
        report["cropped"] = str(error)
    report["layers_after_refusal"] = len(doc.topLevelNodes())
    [node] = scripting.apply_outcome(doc, spec, outcome, force=True)
    report["forced"] = describe(node)

    spec = scripting.prepare(doc, op, model="classic-telea", params={"feather": 0})
    outcome = jobs.execute(client, spec)
    doc.close()
    try:
        scripting.apply_outcome(doc, spec, outcome)
        report["closed"] = "no error"
    except host.DocumentClosed as error:
        report["closed"] = str(error)
    result, pixels_ = outcome.images[0]
    node = scripting.open_as_new_document(spec, outcome.job, result, pixels_,
                                          outcome.raws.get(result.index))
    report["new_document"] = describe(node)
    return report


def deep_upscale(orders):
    """A tall 16-bit gradient upscaled x2 with Lanczos: how many levels survive down a column."""
    from krita import Krita
    from PyQt5.QtCore import QByteArray

    width, height = orders["size"]
    app = Krita.instance()
    doc = app.createDocument(width, height, "deep", "RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc",
                             300.0)
    doc.setBatchmode(True)
    values = array("H", bytes(width * height * 8))
    for y in range(height):
        v = y * 65535 // (height - 1)
        values[4 * width * y:4 * width * (y + 1)] = array("H", [v, v, v, 65535] * width)
    doc.topLevelNodes()[0].setPixelData(QByteArray(values.tobytes()), 0, 0, width, height)
    from aiedit import host, jobs, scripting
    from aiedit.aiedit_client import Client

    client = Client(orders["server_url"])
    spec = scripting.prepare(doc, client.operation("upscale"), model="classic-lanczos",
                             params={"scale": 2})
    outcome = jobs.execute(client, spec)
    [(result, pixels)] = outcome.images
    new, node = host.new_document_for(doc, pixels, "upscaled", spec.capture,
                                      outcome.raws[result.index])
    column = array("H", bytes(node.pixelData(width, 0, 1, 2 * height)))
    return {"space": [new.colorModel(), new.colorDepth(), new.colorProfile()],
            "resolution": new.resolution(), "size": [new.width(), new.height()],
            "levels": len(set(column[1::4]))}


def creative(orders):
    """generate with a control layer, a reference layer, a style, a LoRA and two variations."""
    import hashlib

    from PyQt5.QtCore import QByteArray

    import aiedit

    doc, _ = make_document("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc", gradient16())
    edges = doc.createNode("Edges", "paintlayer")
    edges.setPixelData(QByteArray(bytes(
        v for y in range(H) for x in range(W)
        for v in ((255, 255, 255, 255) if x % 12 == 0 or y % 10 == 0 else (0, 0, 0, 255)))),
        0, 0, W, H)
    ref = doc.createNode("Ref", "paintlayer")  # only from (8, 4) on: the rest is transparent
    ref.setPixelData(QByteArray(bytes(
        v for y in range(H - 4) for x in range(W - 8) for v in (200, y * 3, x * 2, 255))),
        8, 4, W - 8, H - 4)
    root = doc.rootNode()
    root.addChildNode(edges, root.childNodes()[0])
    root.addChildNode(ref, edges)
    x, y, w, h = orders["selection"]
    select(doc, x, y, w, h)
    nodes = aiedit.run(doc, "generate", prompt="a red fox", model="tiny-sdxl",
                       server_url=orders["server_url"], style="cinematic",
                       params={"seed": 7, "steps": 2, "count": 2,
                               "loras": [{"id": "tiny-lora-sdxl", "weight": 0.5}]},
                       controls=[{"layer": "Edges", "kind": "canny", "strength": 0.7},
                                 {"layer": "Ref", "kind": "reference", "strength": 0.5}])
    def rgba(node):
        bgra = bytearray(node.pixelData(x, y, w, h))
        bgra[0::4], bgra[2::4] = bgra[2::4], bgra[0::4]
        return bytes(bgra)

    return {"nodes": [describe(n) for n in nodes],
            "edges": hashlib.sha256(rgba(edges)).hexdigest(),
            "ref": hashlib.sha256(rgba(ref)).hexdigest(),
            "ref_corner": list(rgba(ref)[:4])}


SCENARIOS = {f.__name__: f for f in (colour_round_trip, soft_mask, two_outpaints,
                                     document_changes, deep_upscale, creative)}
