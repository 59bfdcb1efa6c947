"""Krita plugin on a deep layer (issue: colour-true, deep-colour and non-destructive results).

In real Krita 5.1 (kritarunner, offscreen) against a live server: a 16-bit layer is read, sent
through an identity job (classic inpaint at strength 0 over a full selection) and written back
as a masked result; what counts is the time Krita's GUI thread spends (reading and inserting:
the network and the pixel conversion run on a worker thread, as in the docker).

- sRGB 16-bit, BENCH_KRITA_SIZE (default 4096) a side: target under 5 s of GUI-thread time
  (the row's baseline is that 5 s budget, so ratio <= 1 meets it);
- Adobe RGB 16-bit, BENCH_KRITA_WIDE_SIZE (default 2048): a figure (Krita's own colour engine
  converts both ways on the GUI thread)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bench.common import Row
from tests.helpers import LiveServer

SIZE = int(os.environ.get("BENCH_KRITA_SIZE", "4096"))
WIDE_SIZE = int(os.environ.get("BENCH_KRITA_WIDE_SIZE", "2048"))
BUDGET_S = 5.0
HERE = Path(__file__).resolve().parent


def run_in_krita(server_url: str, size: int, profile: str, work: Path) -> dict:
    from aiedit.plugins_install import install_krita
    from tests.plugins.krita.krita_helpers import (
        PROFILE_CACHE,
        build_profile_cache,
        require_krita,
        run_kritarunner,
    )

    require_krita()
    if not PROFILE_CACHE.is_dir():
        build_profile_cache()
    import shutil

    home = work / f"home-{size}"
    shutil.copytree(PROFILE_CACHE, home, symlinks=True)
    pykrita = work / "pykrita"
    if not pykrita.exists():
        install_krita(pykrita, enable=False)
    out = work / f"out-{size}-{profile[:6]}"
    out.mkdir()
    orders = work / f"orders-{size}.json"
    orders.write_text(json.dumps({"server_url": server_url, "size": size, "profile": profile,
                                  "out_dir": str(out)}))
    proc = run_kritarunner(home, [pykrita, HERE / "kritarunner"], "krita_bench_gui", orders,
                           timeout=900)
    report_path = out / "result.json"
    if not report_path.exists():
        raise RuntimeError(f"kritarunner wrote no report:\n{proc.stdout[-3000:]}")
    report = json.loads(report_path.read_text())
    if report["error"]:
        raise RuntimeError(report["error"])
    return report


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="aiedit-bench-krita-") as tmp:
        work = Path(tmp)
        server = LiveServer(work / "data").start()
        try:
            srgb = run_in_krita(server.url, SIZE, "sRGB-elle-V2-srgbtrc.icc", work)
            wide = run_in_krita(server.url, WIDE_SIZE, "ClayRGB-elle-V2-g22.icc", work)
        finally:
            server.stop()
    rows = [
        Row(f"krita GUI thread, {SIZE}² 16-bit sRGB (read+write) ÷ 5 s", srgb["gui_s"],
            BUDGET_S, target=1.0,
            note=f"read {srgb['read_s']:.2f} s, write {srgb['write_s']:.2f} s; worker "
                 f"{srgb['worker_s']:.2f} s; sent/returned as {srgb['depth']}"),
        Row(f"krita GUI thread, {WIDE_SIZE}² 16-bit Adobe RGB (read+write) ÷ 5 s",
            wide["gui_s"], BUDGET_S,
            note=f"read {wide['read_s']:.2f} s, write {wide['write_s']:.2f} s (Krita's colour "
                 f"engine both ways); worker {wide['worker_s']:.2f} s"),
    ]
    return rows
