"""A long library session stays within the kernel's memory-mapping limit.

Every compiled XLA:CPU program holds ~3 memory mappings per fused kernel (about 180–240 for
one setup's forward render, ~1,600 more for its gradient).  Before the bounded table of
compiled setups (nanobragg_jax/_compiled.py) they all stayed alive, and a process rendering
~35 different setups hit vm.max_map_count (65,530) and crashed.  These tests render many
different setups in one process and check that the number of mappings levels off.
"""

from __future__ import annotations

import gc
import sys

import jax
import numpy as np
import pytest

import nanobragg_jax as nb
from nanobragg_jax import _compiled

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")


def _maps() -> int:
    gc.collect()
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def _setup(i: int):
    # a different detector size each time: a different Setup, a new compiled program
    exp = nb.from_cli_args(f"-cell {60 + i % 7} 70 80 90 90 90 -default_F 100 -lambda 1.0 -N 2 "
                           f"-distance 100 -detpixels {6 + i}".split())
    return exp.setup, exp.params


def test_setup_jit_matches_and_differentiates() -> None:
    # the setup and gradient of test_programs_on_disk_replace_a_damaged_file_and_skip_traced_calls:
    # one compiled gradient serves both tests
    setup, params = _setup(4)
    image = nb.simulate(setup, params, devices=1)
    assert image.shape == (10, 10) and float(image.sum()) > 0
    grad = jax.grad(lambda p: nb.simulate(setup, p, devices=1).sum())(params)
    assert np.isfinite(float(grad.distance)) and float(grad.default_F) > 0
    jitted = jax.jit(lambda p: nb.simulate(setup, p))(params)  # inside a caller's jit
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(image), rtol=1e-12)


@pytest.mark.slow  # ~40 s: 20 setups compiled in one process
def test_mappings_level_off_with_a_small_table(monkeypatch) -> None:
    monkeypatch.setattr(_compiled, "COMPILED_SETUPS", 2)
    _compiled.clear_compiled_setups()
    counts = []
    for i in range(10):
        setup, params = _setup(i)
        nb.simulate(setup, params).block_until_ready()
        counts.append(_maps())
    assert _compiled.compiled_setups() <= 2
    # once the table is full, each new setup frees what the evicted one held; allow one
    # setup's worth (~250) of noise from JAX's own small caches
    growth = max(counts[4:]) - counts[3]
    assert growth < 250, f"mappings kept growing: {counts}"
    _compiled.clear_compiled_setups()


@pytest.mark.slow
def test_two_hundred_setups_forward_and_ten_gradients() -> None:
    _compiled.clear_compiled_setups()
    start = _maps()
    counts = []
    for i in range(200):
        setup, params = _setup(i)
        nb.simulate(setup, params).block_until_ready()
        if i % 20 == 0:
            jax.block_until_ready(jax.grad(lambda p: nb.simulate(setup, p).sum())(params))
        counts.append(_maps())
    print(f"\nmappings: start {start}, every 20th setup {counts[::20]}, max {max(counts)}")
    # bounded: the table holds 12 closures (forward and gradient programs), far below 65,530
    assert max(counts) - start < 30000, counts[::20]
    assert max(counts[100:]) - max(counts[:60]) < 3000, counts[::20]


# -- compiled programs on disk (the command line's warm start) --------------------------------

# Run in a fresh interpreter, as the command runs: in a process that has compiled many
# programs already, XLA:CPU may share their kernels with a new one, whose serialised copy then
# lacks that code; the store detects this (it runs the copy before keeping it) and stores
# nothing, so the checks below need a process whose compiles are its own.
_STORE_CHECKS = r"""
import sys, numpy as np, jax
jax.config.update("jax_enable_x64", True)
import nanobragg_jax as nb
from nanobragg_jax import _compiled
from pathlib import Path
folder = Path(sys.argv[1])
exp = nb.from_cli_args("-cell 61 70 80 90 90 90 -default_F 100 -lambda 1.0 -N 2 -distance 100 -detpixels 12".split())
setup, params = exp.setup, exp.params
with _compiled.executables_on_disk(str(folder)):
    first = np.asarray(nb.simulate(setup, params, devices=1))  # compiled and stored
paths = sorted(folder.glob("program-*.bin"))
assert len(paths) == 2  # simulate's two programs: the shared geometry and the pixel loop
traced = np.asarray(nb.simulate(setup, params, devices=1))
np.testing.assert_array_equal(first, traced)

def no_trace(*a, **k):
    raise AssertionError("traced although the program was on disk")

closure, new_jitted = _compiled._closure, _compiled._new_jitted
_compiled._closure = _compiled._new_jitted = no_trace
with _compiled.executables_on_disk(str(folder)):  # a warm call: loaded, never traced
    warm = np.asarray(nb.simulate(setup, params.replace(fluence=params.fluence * 2), devices=1))
np.testing.assert_allclose(warm, 2 * traced, rtol=1e-12)
_compiled._closure, _compiled._new_jitted = closure, new_jitted

for path in paths:
    path.write_bytes(b"not a program")
with _compiled.executables_on_disk(str(folder)):
    again = np.asarray(nb.simulate(setup, params, devices=1))  # replaced, not trusted
    # under a transformation the arguments are tracers: the usual traced path, nothing stored
    grad = jax.grad(lambda p: nb.simulate(setup, p, devices=1).sum())(params)
np.testing.assert_array_equal(again, traced)
assert all(path.read_bytes() != b"not a program" for path in paths)
assert len(list(folder.glob("program-*.bin"))) == 2
assert np.isfinite(float(grad.fluence))
print("ok")
"""


def test_programs_on_disk_skip_tracing_and_replace_a_damaged_file(tmp_path) -> None:
    import os
    import subprocess
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _STORE_CHECKS, str(tmp_path / "programs")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
