"""The GIMP plug-in's time on a deep layer (issue: colour-true, deep-colour results).

A 4096² 16-bit RGBA layer in real GIMP 3.0.4 (the Debian chroot of scripts/gimp-chroot.sh) is
read by the plug-in's own code (one bulk GEGL read at rgba16, sRGB), sent to a live
`aiedit serve` as an identity job (inpaint with strength 0 over a select-all: the server gives
the pixels back), and written back as a new 16-bit layer with its mask. The plug-in's main
thread only reads and writes; the network runs in its worker thread. Target: read + write on the
main thread under 5 s (row ratio = measured ÷ 5 s, target ≤ 1), counted as the plug-in's CPU
time while it reads and writes (only its main thread runs then): on a shared 2-core machine the
wall time mostly measures the other processes, so it is reported beside it, with the load
average, as is the whole round trip. An sRGB and an Adobe RGB (1998) image are measured: GEGL
converts the latter to sRGB and back on the way.

Size: BENCH_GIMP_SIZE (default 4096). Needs root (the chroot); run
`scripts/gimp-chroot.sh ensure` once (make test does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench.common import Row
from tests.helpers import LiveServer

REPO = Path(__file__).resolve().parents[1]
CHROOT = REPO / "scripts" / "gimp-chroot.sh"
SIZE = int(os.environ.get("BENCH_GIMP_SIZE", "4096"))
INSIDE = "/aiedit-bench"
GUI_BUDGET_S = 5.0

BATCH = '''
import json, sys, time
from gi.repository import Gimp, Gegl
sys.path.insert(0, "{INSIDE}/home/.config/GIMP/3.0/plug-ins/aiedit")
import aiedit_client as ac, aiedit_gimp as host

class Quiet:
    def show(self, job):
        pass

    def tick(self):
        pass

def clock():
    return time.perf_counter(), time.process_time()

def since(start):
    return time.perf_counter() - start[0], time.process_time() - start[1]

N = {SIZE}
client = ac.Client("{URL}")
operation = client.operation("inpaint")
report = {}
for name, profile in (("srgb", None), ("adobe", Gimp.ColorProfile.new_rgb_adobe())):
    image = Gimp.Image.new_with_precision(N, N, Gimp.ImageBaseType.RGB,
                                          Gimp.Precision.U16_NON_LINEAR)
    if profile is not None:
        image.set_color_profile(profile)
    layer = Gimp.Layer.new(image, "Background", N, N, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    row = bytes(v for x in range(N) for v in ((x * 16) & 255, (x * 16) >> 8, 0x40, 0x80, 0,
                                               0x90, 255, 255))
    layer.get_buffer().set(Gegl.Rectangle.new(0, 0, N, N), "R'G'B'A u16", row * N)
    layer.get_buffer().flush()
    Gimp.Selection.all(image)
    start = clock()
    plan = host.plan_job(operation, image, layer, "", "classic-telea", {"strength": 0})
    read = since(start)
    start = clock()
    outcome = host.execute(client, plan, Quiet(), record=False, watchdog=False)
    network = since(start)
    start = clock()
    layers = host.insert_results(image, layer, plan, outcome)
    write = since(start)
    report[name] = dict(read=read, network=network, write=write,
                        depth=host.pixels_depth(plan.image),
                        result_depth=host.pixels_depth(outcome.images[0][1]),
                        bpp=layers[0].get_bpp())
    image.delete()
with open("{INSIDE}/report.json", "w") as f:
    json.dump(report, f)
'''


def run_in_gimp(work: Path, url: str) -> dict:
    plugins = work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins"
    subprocess.run([str(Path(sys.executable).with_name("aiedit")), "plugins", "install", "gimp",
                    "--dest", str(plugins)], check=True, capture_output=True)
    code = BATCH.replace("{INSIDE}", INSIDE).replace("{SIZE}", str(SIZE)).replace("{URL}", url)
    (work / "batch.py").write_text(textwrap.dedent(code))
    done = subprocess.run(
        [str(CHROOT), "run", "--bind", f"{work}:{INSIDE}", "--", "env", f"HOME={INSIDE}/home",
         "gimp-console-3.0", "-i", "--batch-interpreter=python-fu-eval",
         "-b", f'exec(open("{INSIDE}/batch.py").read())', "--quit"],
        capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not (work / "report.json").exists():
        raise RuntimeError(f"gimp-console exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads((work / "report.json").read_text())


def main() -> list[Row]:
    ensured = subprocess.run([str(CHROOT), "ensure"], capture_output=True, text=True,
                             timeout=1800)
    if ensured.returncode != 0:
        raise RuntimeError(f"the GIMP chroot is not available:\n{ensured.stderr[-2000:]}")
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "data").start()
        try:
            report = run_in_gimp(Path(tmp) / "gimp", server.url)
        finally:
            server.stop()
    load = os.getloadavg()[0]
    rows = []
    for name, title in (("srgb", "sRGB"), ("adobe", "Adobe RGB")):
        figures = report[name]
        if (figures["depth"], figures["result_depth"], figures["bpp"]) != (16, 16, 8):
            raise RuntimeError(f"the {title} round trip was not 16-bit all the way: {figures}")
        read, write, network = figures["read"], figures["write"], figures["network"]
        label = f"GIMP {SIZE}² 16-bit {title}"
        rows.append(Row(
            f"{label}: read + write, main-thread CPU ÷ 5 s", read[1] + write[1], GUI_BUDGET_S,
            1.0, note=f"read {read[1]:.2f} s, write {write[1]:.2f} s CPU"))
        rows.append(Row(
            f"{label}: read + write, wall ÷ 5 s", read[0] + write[0], GUI_BUDGET_S,
            note=f"read {read[0]:.2f} s, write {write[0]:.2f} s; load average {load:.1f} "
                 f"on {os.cpu_count()} cores"))
        rows.append(Row(f"{label}: whole round trip, wall ÷ 5 s",
                        read[0] + write[0] + network[0], GUI_BUDGET_S,
                        note=f"send, server, download {network[0]:.2f} s (worker thread)"))
    return rows
