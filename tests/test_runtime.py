"""spikejax.runtime: the glibc allocator tuning removes per-call page faults of large buffers."""

import subprocess
import sys

import pytest

from spikejax import runtime

PROBE = r"""
import ctypes, resource, sys
sys.path.insert(0, {root!r})
from spikejax import runtime
if {tune}:
    assert runtime.tune_cpu_allocator()
libc = runtime._libc()
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = 64 << 20                                 # 64 MiB, above glibc's largest mmap threshold
def use():                                   # what XLA does with a temporary buffer each call
    p = libc.malloc(ctypes.c_size_t(n))
    ctypes.memset(p, 1, n)
    libc.free(ctypes.c_void_p(p))
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def run():
    use()
    f0 = faults()
    for _ in range(5):
        use()
    print((faults() - f0) / 5)
if {threaded}:                               # XLA allocates on its worker threads
    import threading
    t = threading.Thread(target=run); t.start(); t.join()
else:
    run()
"""


def _faults_per_iteration(tune: bool, threaded: bool = False) -> float:
    import pathlib

    root = str(pathlib.Path(runtime.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=root, tune=tune, threaded=threaded)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(runtime._libc() is None, reason="needs glibc")
@pytest.mark.parametrize("threaded", [False, True])
def test_tuning_removes_page_faults_of_reallocated_large_buffers(threaded):
    pages = (64 << 20) // 4096
    default = _faults_per_iteration(False, threaded)
    tuned = _faults_per_iteration(True, threaded)
    assert default > 0.9 * pages  # glibc default: a fresh mmap, every page faulted in again
    assert tuned < 0.05 * pages  # tuned: the heap block is reused, no new faults


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="trim_threshold"):
        runtime.tune_cpu_allocator(trim_threshold=-1)
    with pytest.raises(ValueError, match="top_pad"):
        runtime.tune_cpu_allocator(top_pad=1 << 40)


def test_env_switch(monkeypatch):
    monkeypatch.setenv("SPIKEJAX_TUNE_MALLOC", "0")
    assert runtime.tune_from_env() is False
