"""Giving freed heap memory back to the system after a large poll.

A listing of a long history allocates and frees tens of megabytes; CPython returns whole free
arenas itself, but glibc keeps the freed tops of its heaps until asked. ``malloc_trim`` asks;
elsewhere (musl, macOS) there is nothing to ask and this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["LARGE_LISTING", "trim"]

#: a poll that listed this many rows is worth a trim afterwards (measured: about 20 B a job
#: after a first poll of 100,000, ``python -m bench --as-run``, figure C)
LARGE_LISTING = 10_000


@functools.cache
def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def trim() -> bool:
    """Return the free memory at the top of the heaps to the system; False where unsupported."""
    malloc_trim = _malloc_trim()
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True
