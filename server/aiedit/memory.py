"""How a server process gives freed memory back to the system (glibc's malloc).

By default glibc serves a request from 128 KiB up with a fresh mapping, raising that bound
(up to 32 MiB) only as big mapped blocks are freed, and gives the free top of a heap back to
the system past twice that bound. A process that decodes an upload on every request allocates
a few megabytes and frees them, and unless something bigger raised the bounds before, the next
request faults the same pages in again. Measured with a 512² PNG: about 1,000 page faults
(4 MiB) a decode, 3.3 ms against 1.9-2.3 ms with the bounds fixed in a loop, and 6.0-6.5 ms
against 3.2-4.2 ms in a studio API process (whose requests free nothing bigger); a personal
server, whose jobs free big blocks in the same process, had reached them by itself. Fixed at
glibc's own ceiling (MMAP_BYTES; trimmed past TRIM_BYTES of free space at a heap's top), they
hold from the first request in every process, at the cost of keeping up to TRIM_BYTES free in
each heap a busy thread uses.

Operators keep the last word: glibc's own variables (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_, or glibc.malloc tunables in GLIBC_TUNABLES) leave the process as they
set it."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 << 20  # a 2896² RGBA image; the most glibc itself raises it to
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
