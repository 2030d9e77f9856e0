"""The detector normal ``Params.odet``: used only when the setup keeps it, and then unit-normalised.

The C program keeps a given normal (-odet_vector, or a convention's) only if it has unit
length; otherwise it regenerates fdet × sdet.  That choice is ``Setup.odet_given``, made once
on the host.  So: with a non-unit -odet_vector the image does not depend on ``params.odet`` at
all (gradient exactly 0); with a unit one the image depends on its direction only, and
jax.grad equals central differences (and has no radial component).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402

BASE = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 24 "
        "-pixel 0.4 -detector_abs 500 -detector_thick 450 -thicksteps 2 "
        "-beam_vector 1 0 0 -fdet_vector 0 0 1 -sdet_vector 0 -1 0 -polar_vector 0 0 1 ").split()


def _weighted_sum(exp):
    w = jnp.asarray(np.random.default_rng(7).uniform(0.5, 1.5, (exp.setup.spixels, exp.setup.fpixels)))

    @jax.jit
    def S(odet):
        return jnp.sum(simulate(exp.setup, exp.params.replace(odet=odet)) * w)

    return S


def test_non_unit_odet_is_not_used():
    exp = from_cli_args(BASE + ["-odet_vector", "2", "0", "0"])
    assert not exp.setup.odet_given
    S = _weighted_sum(exp)
    odet = jnp.asarray(exp.params.odet)
    assert float(S(odet)) > 0.0
    assert np.all(np.asarray(jax.grad(S)(odet)) == 0.0)
    # and the image is that of the regenerated normal fdet × sdet = (1, 0, 0)
    unit = from_cli_args(BASE + ["-odet_vector", "1", "0", "0"])
    np.testing.assert_allclose(simulate(exp.setup, exp.params), simulate(unit.setup, unit.params), rtol=1e-14)


@pytest.mark.parametrize("odet", [("1", "0", "0"), ("0.6", "0.8", "0")])
def test_unit_odet_gradient_matches_central_differences(odet):
    exp = from_cli_args(BASE + ["-odet_vector", *odet])
    assert exp.setup.odet_given
    S = _weighted_sum(exp)
    o = jnp.asarray(exp.params.odet, jnp.float64)
    grad = np.asarray(jax.grad(S)(o))
    h = 1e-5
    fd = np.array([(float(S(o + h * e)) - float(S(o - h * e))) / (2 * h) for e in np.eye(3)])
    assert np.max(np.abs(grad)) > 0.0
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * np.max(np.abs(fd)))
    # only the direction counts: no radial component
    assert abs(float(grad @ np.asarray(o))) <= 1e-9 * np.max(np.abs(grad))
