"""The joint stills refinement example (examples/refine_stills.py), in a smaller version.

Three stills, shoeboxes from the starting model, Adam + damped Fisher scoring;
every refined parameter must end within 3σ of the truth, σ from the Fisher
information at the optimum.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("optax")

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_example():
    path = os.path.join(HERE, os.pardir, "examples", "refine_stills.py")
    spec = importlib.util.spec_from_file_location("refine_stills_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_refine_stills_recovers_truth_within_3_sigma():
    ex = _load_example()
    problem = ex.make_problem(seed=0, size=96, pixel=0.5)
    assert problem.n_spots > 30
    # shoeboxes only: a fraction of the three detectors
    assert problem.n_pixels < 0.6 * 3 * 96 * 96
    result = ex.Refiner(problem).run(problem, adam_steps=10, gn_steps=6)
    z = ex.z_scores(problem, result)
    assert np.all(np.isfinite(result.sigma)) and np.all(result.sigma > 0)
    assert np.all(np.abs(z) < 3), ex.table(problem, result)
    # and far better than the start (each parameter started one perturbation away)
    assert np.all(np.abs(result.x - problem.x_true) < 0.2 * problem.scale), ex.table(problem, result)
