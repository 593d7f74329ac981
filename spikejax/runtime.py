"""Process-level settings that make JAX on CPU fast.  Standard library only.

Why: every call of a jitted function allocates XLA's temporary buffers afresh.  With glibc's
default malloc, a buffer above the mmap threshold (at most 32 MiB on 64-bit) is a fresh
``mmap`` each call and is unmapped again when freed, so every call pays one page fault (with
zeroing) per 4 KiB page it touches.  A backward pass through a 500-step LIF layer keeps
``[T, B, N]`` residuals and spends more time faulting pages in than computing
(``benchmarks/bench_lif.py`` reports faults per call).  Telling glibc to serve large blocks
from its heap and not to give freed memory back to the OS removes those faults after the first
call; the price is that the process keeps its peak heap.  XLA's worker threads would otherwise
get their own malloc arenas, whose heaps are shrunk (and re-faulted) on free, so the tuning also
keeps every thread on the main arena (``M_ARENA_MAX = 1``).

:func:`tune_cpu_allocator` does that with ``mallopt`` at run time (no environment variables
needed before start-up).  It is opt-in for library users; the experiment runner
(``python -m experiments``) calls it unless ``SPIKEJAX_TUNE_MALLOC=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["tune_cpu_allocator", "allocator_tuned"]

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_STATE = {"tuned": False}


def _libc():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        return lib if hasattr(lib, "mallopt") and hasattr(lib, "gnu_get_libc_version") else None
    except OSError:
        return None


def tune_cpu_allocator(*, trim_threshold: int = 1 << 30, top_pad: int = 64 << 20) -> bool:
    """Serve large allocations from glibc's heap and keep freed memory (see module docstring).

    ``trim_threshold``: free memory at the top of the heap kept rather than returned to the OS
    [bytes]; ``top_pad``: extra bytes requested from the OS per heap growth.  Returns True if
    the settings took effect (glibc), False elsewhere (other C libraries: nothing is changed).
    """
    for name, v in (("trim_threshold", trim_threshold), ("top_pad", top_pad)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v >= 1 << 31:
            raise ValueError(f"{name} must be an int in [0, 2**31), got {v!r}")
    lib = _libc()
    if lib is None:
        return False
    ok = all(
        lib.mallopt(ctypes.c_int(opt), ctypes.c_int(val)) == 1
        for opt, val in ((_M_MMAP_MAX, 0), (_M_ARENA_MAX, 1), (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad))
    )
    _STATE["tuned"] = _STATE["tuned"] or ok
    return ok


def allocator_tuned() -> bool:
    """Whether :func:`tune_cpu_allocator` took effect in this process."""
    return _STATE["tuned"]


def tune_from_env(var: str = "SPIKEJAX_TUNE_MALLOC") -> bool:
    """Tune unless ``$var`` is ``0``/``false``/``no`` (used by the experiment runner)."""
    if os.environ.get(var, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return tune_cpu_allocator()
