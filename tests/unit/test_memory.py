"""A server process keeps the memory a request freed for the next one (aiedit.memory): an
upload's decode then takes pages the last decode used instead of faulting fresh ones in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aiedit import memory

ROOT = Path(__file__).resolve().parents[2]
DECODES = """
import json, resource, statistics, sys
from aiedit import memory
kept = memory.keep_freed_memory() if sys.argv[1] == "keep" else None
from aiedit.imaging.codec import decode_image
from bench.bench_studio import _gradient
data = _gradient(512)
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    decode_image("image", data, 1 << 24, 1 << 14)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": statistics.median(faults[2:])}))
"""

def _decodes(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in memory.OPERATOR_SETTINGS}
    out = subprocess.run([sys.executable, "-c", DECODES, mode], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.splitlines()[-1])


def test_repeated_decodes_reuse_freed_pages_with_the_thresholds_set():
    if not memory.is_glibc():
        assert memory.keep_freed_memory() is False  # other C libraries: nothing is changed
        return
    kept, default = _decodes("keep"), _decodes("default")
    assert kept["kept"] is True
    assert kept["faults"] < 50, kept  # a 512² RGBA decode touches about 1,000 pages
    assert default["faults"] > 500, ("glibc's defaults fault the pages in on every decode; "
                                     f"if they no longer do, this module may go: {default}")


def test_an_operators_glibc_settings_are_left_alone():
    for setting in ({"MALLOC_MMAP_THRESHOLD_": "1048576"}, {"MALLOC_TRIM_THRESHOLD_": "0"},
                    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"}):
        assert memory.keep_freed_memory(setting) is False
    if memory.is_glibc():  # a tunable for something else is no malloc setting
        assert memory.keep_freed_memory({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"})
