"""``jax.vmap(simulate, in_axes=(None, 0))`` over a batch of Params (issue 4).

A batch is a Params whose every leaf has a leading axis (here: 16 crystal
orientations, then a mixed batch of detector and beam changes); the batched
images must equal a Python loop over the members, and batching must compose
with ``jax.grad``.
"""

from __future__ import annotations

import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402

ARGS = ("-cell 70 80 90 88 92 95 -default_F 100 -lambda 1 -N 5 -distance 80 -detpixels 24 "
        "-pixel 0.8 -oversample 1 -phisteps 2 -osc 0.2 -mosaic 0.2 -mosaic_dom 2")


@functools.lru_cache(maxsize=None)
def problem():
    exp = from_cli_args(ARGS.split())
    return exp.setup, jax.tree_util.tree_map(jnp.asarray, exp.params)


def stack(members):
    """Params list → one Params with a leading batch axis on every leaf."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *members)


def test_vmap_over_16_orientations_equals_a_loop():
    setup, params = problem()
    rng = np.random.default_rng(0)
    members = [params.replace(misset=jnp.asarray(m)) for m in rng.uniform(-30, 30, (16, 3))]
    batched = jax.vmap(simulate, in_axes=(None, 0))(setup, stack(members))
    assert batched.shape == (16, setup.spixels, setup.fpixels)
    looped = np.stack([np.asarray(simulate(setup, p)) for p in members])
    assert np.all(looped.sum(axis=(1, 2)) > 0)
    assert len({round(float(s), 6) for s in looped.sum(axis=(1, 2))}) == 16  # really different
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-12, atol=1e-12 * looped.max())


def _mixed_batch(params, n=4):
    rng = np.random.default_rng(1)
    members = []
    for _ in range(n):
        members.append(params.replace(
            cell=params.cell * jnp.asarray(1 + rng.uniform(-0.01, 0.01, 6)),
            distance=params.distance + rng.uniform(-2, 2),
            beam_center=params.beam_center + jnp.asarray(rng.uniform(-0.5, 0.5, 2)),
            wavelength=params.wavelength * (1 + rng.uniform(-0.01, 0.01)),
            fluence=params.fluence * rng.uniform(0.5, 2.0),
            misset=jnp.asarray(rng.uniform(-10, 10, 3)),
        ))
    return members


def test_vmap_over_mixed_parameters():
    """A batch varying cell, distance, beam centre, λ, fluence and misset at once."""
    setup, params = problem()
    members = _mixed_batch(params)
    images = jax.vmap(simulate, in_axes=(None, 0))(setup, stack(members))
    looped = np.stack([np.asarray(simulate(setup, p)) for p in members])
    np.testing.assert_allclose(np.asarray(images), looped, rtol=1e-12, atol=1e-12 * looped.max())


@pytest.mark.slow
def test_vmap_of_grad_equals_loop_of_grads():
    """Per-member gradient of Σ image (vmap of grad; cell, distance, fluence)."""
    setup, params = problem()
    members = _mixed_batch(params)
    fields = ("cell", "distance", "fluence")

    def grad_of(p):
        sub = {k: getattr(p, k) for k in fields}
        return jax.grad(lambda s: jnp.sum(simulate(setup, p.replace(**s))))(sub)

    g_batched = jax.vmap(grad_of)(stack(members))
    for i, p in enumerate(members):
        g = grad_of(p)
        for k in fields:
            np.testing.assert_allclose(np.asarray(g_batched[k][i]), np.asarray(g[k]), rtol=1e-9,
                                       atol=1e-12 * float(np.abs(np.asarray(g[k])).max()), err_msg=k)
            assert np.any(np.asarray(g[k]) != 0), k
