"""How a server process gives freed memory back to the system (glibc's malloc).

By default glibc serves a request from 128 KiB up with a fresh mapping (raising that bound as
big blocks are freed) and gives the free top of a heap back to the system once it passes a
threshold. A request that decodes an upload allocates a few megabytes and frees them; under
the defaults the next request faults the same pages in again. Measured in a studio API process
with a 512² PNG: about 1,000 page faults (4 MiB) a decode, which took 6.0-6.5 ms against
3.3-4.1 ms with the fixed thresholds below (2 faults). Fixed thresholds keep blocks up to
MMAP_BYTES in the heaps and up to TRIM_BYTES of free space at each heap's top (glibc's own
rule: trim at twice the mapping bound); bigger blocks are still mapped and unmapped.

Operators keep the last word: glibc's own variables (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_, or GLIBC_TUNABLES) leave the process as they set it."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 8 << 20  # a 1448² RGBA image
TRIM_BYTES = 2 * MMAP_BYTES
OPERATOR_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "", "MALLOC_TRIM_THRESHOLD_": "",
                     "GLIBC_TUNABLES": "glibc.malloc."}  # variable: what marks a malloc setting


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return False


def keep_freed_memory(environ=None) -> bool:
    """Set the fixed thresholds in this process (and the processes it forks). False, changing
    nothing, where the C library is not glibc or the operator set glibc's variables."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name) and mark in environ[name] for name, mark in OPERATOR_SETTINGS.items()):
        return False
    if not is_glibc():
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
    if not done:
        log.warning("could not set the C library's memory thresholds (mallopt)")
    return done
