"""One malloc arena for the whole server process (glibc), so freed receive buffers are reused.

glibc gives each thread that allocates its own heap ("arena", up to 8 per core) and rarely
returns their freed memory to the system. gRPC core assembles every received message from
slices allocated on whichever of its threads read the socket, so with large frames each of
those threads' arenas ends up keeping a message's worth of freed slices: four streams of
48 MiB RAW frames grew the server by 431 MiB with 8+ arenas while the frames it held stayed
within a 128 MiB budget. With one arena the next message reuses what the last one freed
(241-289 MiB peak growth for the same attack, most of it the messages in flight). The price is
one malloc lock for every thread: about 5% on the JPEG row 5, where decode threads and
TensorFlow allocate at the same time. Both figures: BENCHMARKS.md, session 4.

This must run before the threads it concerns start (TensorFlow's and gRPC's), so ``serve``
calls it first. An explicit ``MALLOC_ARENA_MAX`` in the environment wins; other C libraries
(musl) have no arenas to limit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
SERVER_ARENAS = 1


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Cap glibc's malloc arenas for threads started from now on; whether the cap was set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False  # glibc read it at start-up: the operator's choice stands
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_ARENA_MAX, arenas) == 1
    if done:
        logger.debug("malloc arenas limited to %d", arenas)
    return done


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``).

    Called once after a replaced model version has been freed: its weights and graphs were
    many medium-sized allocations, whose pages glibc otherwise keeps, so each swap would
    leave the process a model larger. Whether it ran (other C libraries have no such call).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True
