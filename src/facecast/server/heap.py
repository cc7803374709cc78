"""Give freed heap memory back to the operating system (glibc's ``malloc_trim``).

A long-running server frees and reallocates buffers of many sizes (batches, streams that come and go); glibc keeps
the freed pages, so the resident size drifts up with fragmentation while the memory in use does not. Trimming now
and then keeps the resident size close to what is used. Elsewhere (macOS, musl) it is a no-op.
"""

from __future__ import annotations

import ctypes
import sys

_MALLOC_TRIM = None


def trim_heap() -> bool:
    """Release free heap pages to the OS; True when glibc did release some."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        _MALLOC_TRIM = False
        if sys.platform.startswith("linux"):
            try:
                _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
                _MALLOC_TRIM.argtypes = [ctypes.c_size_t]
                _MALLOC_TRIM.restype = ctypes.c_int
            except (OSError, AttributeError):
                _MALLOC_TRIM = False
    return bool(_MALLOC_TRIM(0)) if _MALLOC_TRIM else False
