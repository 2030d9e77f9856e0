#!/usr/bin/env python
"""Refine crystal and detector parameters against a noisy diffraction image.

A still image is simulated from known ("true") parameters and Poisson noise is
added.  Starting from perturbed values of the 12 refined parameters — cell
a b c α β γ (±0.5 %), misset x y z (±0.3°), distance (±1 mm) and beam centre
(±0.3 mm) — the Poisson negative log-likelihood

    L(θ) = Σ_pixels [μ(θ) − n·log μ(θ)],   μ = simulate(θ) + background,

is minimised with optax in two stages:

1. ``optax.adam`` on parameters scaled by their perturbation size (robust far
   from the optimum);
2. Fisher scoring: ``optax.sgd(1.0)`` in coordinates whitened by the Fisher
   information F = Jᵀ diag(1/μ) J (J = ∂μ/∂θ by forward-mode ``jax.jvp``), i.e.
   the step F⁻¹∇L, which converges in a few iterations near the optimum.

The table compares truth / start / refined with the Cramér–Rao standard errors
sqrt(diag F⁻¹); the loss curve and the residual images (start and refined) are
saved as PNG files when matplotlib is installed.

Run:  python examples/refine.py            (256×256 image, about 30–60 s on a CPU)
      python examples/refine.py --size 128 --pixel 0.4   (a quicker variant)
Needs optax (``pip install optax``, or ``pip install 'nanobragg-jax[examples]'``);
matplotlib is optional.  See docs/refinement.md for a walk-through.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Callable, Optional

import numpy as np

try:
    import optax
except ImportError:  # pragma: no cover - exercised by the test of the message
    optax = None

OPTAX_MISSING = ("examples/refine.py needs optax, an optional dependency of nanobragg-jax.\n"
                 "Install it with:  pip install optax   (or: pip install 'nanobragg-jax[examples]')")

import jax  # noqa: E402

# A script owns its process: refine in float64 (the library itself never flips this switch).
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402

# The "true" experiment (detector size and pixel are added from the command line).
TRUTH_FLAGS = ("-cell 70 80 90 88 92 95 -misset 10 20 30 -N 3 -lambda 1 -distance 80 "
               "-default_F 100 -oversample 1")

# name, Params field, index (None for a scalar field), unit, perturbation, target accuracy
# (perturbation and target: relative for the cell lengths, absolute otherwise)
REFINED = [
    ("a", "cell", 0, "Å", ("rel", 0.005), ("rel", 1e-3)),
    ("b", "cell", 1, "Å", ("rel", 0.005), ("rel", 1e-3)),
    ("c", "cell", 2, "Å", ("rel", 0.005), ("rel", 1e-3)),
    ("alpha", "cell", 3, "deg", ("rel", 0.005), ("abs", 0.02)),
    ("beta", "cell", 4, "deg", ("rel", 0.005), ("abs", 0.02)),
    ("gamma", "cell", 5, "deg", ("rel", 0.005), ("abs", 0.02)),
    ("misset_x", "misset", 0, "deg", ("abs", 0.3), ("abs", 0.02)),
    ("misset_y", "misset", 1, "deg", ("abs", 0.3), ("abs", 0.02)),
    ("misset_z", "misset", 2, "deg", ("abs", 0.3), ("abs", 0.02)),
    ("distance", "distance", None, "mm", ("abs", 1.0), ("abs", 0.05)),
    ("beam_x", "beam_center", 0, "mm", ("abs", 0.3), ("abs", 0.01)),
    ("beam_y", "beam_center", 1, "mm", ("abs", 0.3), ("abs", 0.01)),
]


@dataclasses.dataclass
class Problem:
    """A simulated measurement and the refinement's parametrisation x = x_start + scale·u."""

    setup: object
    truth: object  # Params
    data: jnp.ndarray  # observed counts
    background: float
    x_true: np.ndarray
    x_start: np.ndarray
    scale: np.ndarray
    put: Callable  # x (12,) → Params

    def model(self, x):
        return simulate(self.setup, self.put(x)) + self.background


@dataclasses.dataclass
class Result:
    x: np.ndarray
    sigma: np.ndarray  # Cramér–Rao standard errors at the optimum
    history: list  # (stage, step, loss) per iteration
    seconds: dict
    model_start: np.ndarray
    model_refined: np.ndarray


def _amount(x_true, kind_value):
    kind, value = kind_value
    return abs(x_true) * value if kind == "rel" else value


def make_problem(size: int = 256, pixel: float = 0.2, seed: int = 0, fluence_scale: float = 50.0,
                 background: float = 5.0) -> Problem:
    """Simulate the noisy image and the perturbed starting point."""
    exp = from_cli_args(TRUTH_FLAGS.split() + ["-detpixels", str(size), "-pixel", str(pixel)])
    truth = jax.tree_util.tree_map(jnp.asarray, exp.params)
    truth = truth.replace(fluence=truth.fluence * fluence_scale)
    units = []
    for _, field, index, *_ in REFINED:
        e = np.zeros(np.shape(getattr(truth, field)))
        if index is None:
            e = np.ones_like(e)
        else:
            e[index] = 1.0
        units.append((field, e))

    def value(params, k):
        field, e = units[k]
        return float(np.sum(np.asarray(getattr(params, field)) * e))

    x_true = np.array([value(truth, k) for k in range(len(REFINED))])

    def put(x):
        changes = {}
        for k, (field, e) in enumerate(units):
            base = changes.get(field, jnp.asarray(getattr(truth, field)))
            changes[field] = base + (x[k] - x_true[k]) * e
        return truth.replace(**changes)

    rng = np.random.default_rng(seed)
    mu = np.asarray(simulate(exp.setup, truth)) + background
    data = jnp.asarray(rng.poisson(mu).astype(np.float64))
    scale = np.array([_amount(x_true[k], r[4]) for k, r in enumerate(REFINED)])
    x_start = x_true + rng.choice([-1.0, 1.0], size=len(REFINED)) * scale
    return Problem(exp.setup, truth, data, background, x_true, x_start, scale, put)


def refine(problem: Problem, adam_steps: int = 100, adam_lr: float = 0.05, fisher_steps: int = 8,
           log: Optional[Callable[[str], None]] = print) -> Result:
    """Minimise the Poisson NLL: Adam, then Fisher scoring (both with optax)."""
    if optax is None:
        raise SystemExit(OPTAX_MISSING)
    log = log or (lambda s: None)
    p = problem
    n = len(p.x_start)
    x0, scale = jnp.asarray(p.x_start), jnp.asarray(p.scale)
    data = p.data

    def to_x(u):
        return x0 + scale * u

    def nll(u):
        mu = p.model(to_x(u))
        return jnp.sum(mu - data * jnp.log(mu))

    seconds = {}
    t = time.perf_counter()
    value_and_grad = jax.jit(jax.value_and_grad(nll))
    u = jnp.zeros(n)
    value_and_grad(u)[0].block_until_ready()
    seconds["compile value_and_grad"] = time.perf_counter() - t
    model_start = np.asarray(p.model(to_x(u)))
    history = []

    # Stage 1: Adam on scaled parameters.
    t = time.perf_counter()
    adam = optax.adam(adam_lr)
    state = adam.init(u)
    update = jax.jit(adam.update)
    for i in range(adam_steps):
        loss, g = value_and_grad(u)
        history.append(("adam", i, float(loss)))
        updates, state = update(g, state, u)
        u = optax.apply_updates(u, updates)
    seconds["adam"] = time.perf_counter() - t
    log(f"adam: {adam_steps} steps, loss {history[-1][2]:.6f}" if adam_steps else "adam: skipped")

    # Stage 2: Fisher scoring = gradient descent in Fisher-whitened coordinates.
    t = time.perf_counter()
    jvp = jax.jit(lambda u, e: jax.jvp(lambda v: p.model(to_x(v)), (u,), (e,)))

    def fisher(u):
        cols, mu = [], None
        for e in jnp.eye(n):
            mu, col = jvp(u, e)
            cols.append(col.ravel())
        J = jnp.stack(cols, axis=1)  # (pixels, n): ∂μ/∂u
        return (J / mu.ravel()[:, None]).T @ J

    F = fisher(u)
    seconds["fisher information"] = time.perf_counter() - t
    t = time.perf_counter()
    W = jnp.linalg.inv(jnp.linalg.cholesky(F)).T  # W Wᵀ = F⁻¹
    u_anchor, v = u, jnp.zeros(n)
    sgd = optax.sgd(1.0)
    state = sgd.init(v)
    for i in range(fisher_steps):
        loss, g = value_and_grad(u_anchor + W @ v)
        history.append(("fisher", i, float(loss)))
        updates, state = sgd.update(W.T @ g, state, v)
        v = optax.apply_updates(v, updates)
    u = u_anchor + W @ v
    loss = float(value_and_grad(u)[0])
    history.append(("fisher", fisher_steps, loss))
    seconds["fisher scoring"] = time.perf_counter() - t
    log(f"fisher scoring: {fisher_steps} steps, loss {loss:.6f}")

    t = time.perf_counter()
    cov = jnp.linalg.inv(fisher(u))
    sigma = np.sqrt(np.diag(np.asarray(cov))) * p.scale
    seconds["standard errors"] = time.perf_counter() - t
    x = np.asarray(to_x(u))
    return Result(x, sigma, history, seconds, model_start, np.asarray(p.model(to_x(u))))


def errors(problem: Problem, result: Result) -> dict:
    """|refined − truth| per parameter in the target's terms (relative for cell lengths)."""
    out = {}
    for k, (name, _, _, _, _, (kind, _)) in enumerate(REFINED):
        d = abs(result.x[k] - problem.x_true[k])
        out[name] = d / abs(problem.x_true[k]) if kind == "rel" else d
    return out


def within_targets(problem: Problem, result: Result, factor: float = 1.0) -> dict:
    err = errors(problem, result)
    return {name: err[name] < factor * target[1] for name, *_, target in REFINED}


def table(problem: Problem, result: Result) -> str:
    err = errors(problem, result)
    ok = within_targets(problem, result)
    lines = [f"{'parameter':10s} {'unit':4s} {'truth':>11s} {'start':>11s} {'refined':>11s} "
             f"{'|error|':>10s} {'σ (CRLB)':>9s} {'target':>9s}  ok"]
    for k, (name, _, _, unit, _, (kind, tol)) in enumerate(REFINED):
        e = f"{100 * err[name]:.4f}%" if kind == "rel" else f"{err[name]:.5f}"
        target = f"{100 * tol:.2f}%" if kind == "rel" else f"{tol:g}"
        lines.append(f"{name:10s} {unit:4s} {problem.x_true[k]:11.5f} {problem.x_start[k]:11.5f} "
                     f"{result.x[k]:11.5f} {e:>10s} {result.sigma[k]:9.5f} {target:>9s}  "
                     f"{'yes' if ok[name] else 'NO'}")
    return "\n".join(lines)


def save_plots(problem: Problem, result: Result, out_dir: str) -> list[str]:
    """Loss curve and residual images (start, refined); returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: skipping the plots")
        return []
    os.makedirs(out_dir, exist_ok=True)
    losses = np.array([h[2] for h in result.history])
    best = losses.min()
    fig, ax = plt.subplots(figsize=(6, 4))
    n_adam = sum(1 for h in result.history if h[0] == "adam")
    steps = np.arange(len(losses))
    ax.semilogy(steps[:n_adam], losses[:n_adam] - best + 1e-3, label="Adam")
    ax.semilogy(steps[n_adam:], losses[n_adam:] - best + 1e-3, "o-", label="Fisher scoring")
    ax.set_xlabel("iteration")
    ax.set_ylabel("NLL − min NLL (+1e-3)")
    ax.set_title("Poisson negative log-likelihood")
    ax.legend()
    fig.tight_layout()
    loss_png = os.path.join(out_dir, "refine_loss.png")
    fig.savefig(loss_png, dpi=120)
    plt.close(fig)

    data = np.asarray(problem.data)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, model, title in ((axes[0], result.model_start, "start"),
                             (axes[1], result.model_refined, "refined")):
        r = (data - model) / np.sqrt(model)
        im = ax.imshow(r, cmap="RdBu_r", vmin=-5, vmax=5)
        ax.set_title(f"(data − model)/√model, {title}: χ²/pixel = {np.mean(r * r):.3f}")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    res_png = os.path.join(out_dir, "refine_residuals.png")
    fig.savefig(res_png, dpi=120)
    plt.close(fig)
    return [loss_png, res_png]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="detector pixels per side")
    parser.add_argument("--pixel", type=float, default=0.2, help="pixel size (mm)")
    parser.add_argument("--seed", type=int, default=0, help="noise and starting-point seed")
    parser.add_argument("--adam-steps", type=int, default=100)
    parser.add_argument("--fisher-steps", type=int, default=8)
    parser.add_argument("--out", default=".", help="folder for the PNG files")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    if optax is None:
        print(OPTAX_MISSING, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    problem = make_problem(args.size, args.pixel, args.seed)
    print(f"{args.size}×{args.size} image, {float(problem.data.sum()):.4g} photons; "
          f"refining {len(REFINED)} parameters")
    result = refine(problem, args.adam_steps, fisher_steps=args.fisher_steps)
    wall = time.perf_counter() - t0
    print()
    print(table(problem, result))
    print()
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
          + f"; total {wall:.1f} s (including the simulation of the data)")
    if not args.no_plots:
        for f in save_plots(problem, result, args.out):
            print("wrote", f)
    return 0 if all(within_targets(problem, result).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
