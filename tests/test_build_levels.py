"""The tests' programs are compiled at XLA's backend optimisation level 0 (tests/conftest.py);
users run XLA's default level.  Same HLO, so the numbers may differ only by floating-point
contraction: this checks images and gradients of both kernel paths against a process at
the default level, to 1e-12 relative."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import TEST_OPT_FLAG

REPO = Path(__file__).resolve().parents[1]
CASES = {
    # fast path: one sub-path per pixel; general path: tricubic interpolation of an HKL grid
    "fast": "-cell 70 80 90 75 85 95 -default_F 100 -lambda 1.0 -N 5 -mosaic 0.5 -mosaic_dom 3 "
            "-dispersion 1 -dispsteps 2 -oversample 2 -distance 100 -detpixels 24",
    "general": "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
               "-detpixels 24 -oversample_omega -oversample 2 -misset 5 10 15",
}

_RENDER = r"""
import sys, json, numpy as np, jax
jax.config.update("jax_enable_x64", True)
import nanobragg_jax as nb
out = {}
for name, flags in json.loads(sys.argv[2]).items():
    exp = nb.from_cli_args(flags.split())
    out[name] = np.asarray(nb.simulate(exp.setup, exp.params, devices=1))
    if name == "fast":  # the derivative pass (the general path's is the same autodiff)
        g = jax.grad(lambda p: nb.simulate(exp.setup, p, devices=1).sum())(exp.params)
        out[name + "_dcell"] = np.asarray(g.cell)
        out[name + "_ddistance"] = np.asarray(g.distance)
np.savez(sys.argv[1], **out)
"""


def _start(path: Path, xla_flags: str) -> subprocess.Popen:
    import json

    env = dict(os.environ, XLA_FLAGS=xla_flags, NANOBRAGG_JAX_CACHE="0", PYTHONPATH=str(REPO),
               JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-c", _RENDER, str(path), json.dumps(CASES)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, path: Path) -> dict:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return dict(np.load(path))


def test_images_and_gradients_of_the_test_build_match_the_default_build(tmp_path):
    default_flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if f != TEST_OPT_FLAG)
    runs = [(_start(tmp_path / f"{name}.npz", flags), tmp_path / f"{name}.npz")
            for name, flags in (("default", default_flags), ("level0", f"{default_flags} {TEST_OPT_FLAG}"))]
    default, level0 = (_result(proc, path) for proc, path in runs)
    assert sorted(default) == sorted(level0) and len(default) == 4
    for key, ref in default.items():
        assert np.all(np.isfinite(ref)) and np.any(ref != 0), key
        np.testing.assert_allclose(level0[key], ref, rtol=1e-12, atol=1e-12 * np.max(np.abs(ref)),
                                   err_msg=key)
