#!/usr/bin/env python
"""Joint refinement of several still shots from their shoeboxes only.

Three stills of one tetragonal crystal form (random orientations) are simulated
with Poisson noise.  The refined parameters are

* shared: cell a, c (Å) and the detector distance (mm);
* per shot: a small orientation correction (rotation vector, mrad, composed
  with the shot's indexed orientation U₀) and an intensity scale G.

The workflow is the one for real data: from the *starting* model, predict the
spots of each shot (``spots.predict_spots``), cut shoeboxes around them
(``spots.shoeboxes``), and evaluate the model only at those pixels
(``pixels.pixel_values``, all shots at once with ``jax.vmap``).  The loss is the
Poisson negative log-likelihood

    L(θ) = Σ_shots Σ_pixels [μ − n log μ],   μ = G·photons(θ) + background,

minimised with optax Adam (in coordinates scaled by the starting error), then
Fisher scoring (Gauss–Newton for Poisson data: θ ← θ − F⁻¹∇L with
F = Jᵀ diag(1/μ) J, J = ∂μ/∂θ by ``jax.jacfwd``) until the Newton decrement
∇Lᵀ F⁻¹ ∇L is below 1e-8 (the remaining step is then < 1e-4 σ).  The standard errors are
sqrt(diag F⁻¹) at the optimum (``refine.fisher_information``,
``refine.standard_errors``); the table lists truth, start, estimate, σ and the
error in units of σ.

Run:  python examples/refine_stills.py                 (seed 0)
      python examples/refine_stills.py --seeds 0-9     (one compile, ten problems)
      python examples/refine_stills.py --panels        (each detector as 2 × 2 panels)
      python examples/refine_stills.py --shots 2 --shot-bucket 4
                                                       (shots padded to a bucket: one compiled
                                                        program for 1-4 shots)
Needs optax.  See docs/refinement.md, "Stills from shoeboxes".
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Callable, Optional

import numpy as np

try:
    import optax
except ImportError:  # pragma: no cover
    optax = None

OPTAX_MISSING = ("examples/refine_stills.py needs optax, an optional dependency of nanobragg-jax.\n"
                 "Install it with:  pip install optax   (or: pip install 'nanobragg-jax[examples]')")

import jax  # noqa: E402

# A script owns its process: refine in float64 (the library never flips this switch).
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from nanobragg_jax import refine as R  # noqa: E402
from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.pixels import bucket_size, pad_pixels, pixel_values  # noqa: E402
from nanobragg_jax.spots import predict_spots, shoeboxes  # noqa: E402

# The experiment: a tetragonal cell, λ 1 Å, 10×10×10 cells, a 128² detector of 0.4 mm pixels.
FLAGS = ("-cell 40 40 55 90 90 90 -default_F 100 -lambda 1 -N 10 -distance 80 "
         "-detpixels {n} -pixel {px} -oversample 1")
N_SHOTS = 3
BACKGROUND = 1.0  # photons/pixel, known
FLUENCE_SCALE = 1.0  # × the default fluence
HALF_BOX = 3  # shoebox half-size (pixels)
DISTANCE = 80.0  # mm, the distance of FLAGS (the panels' reference position)
D_MIN = 2.5  # resolution limit of the predicted spots (Å)
# Starting errors (one unit of the scaled coordinates): a, c (Å); distance (mm);
# rotation vector (mrad); scale (relative).
PERTURB = dict(cell=0.08, distance=0.4, rotvec=0.6, scale=0.1)


def parameter_names(n_shots: int = N_SHOTS) -> list[tuple[str, str]]:
    """(name, unit) of θ: a, c, distance, then per shot rx, ry, rz, G."""
    names = [("a", "Å"), ("c", "Å"), ("distance", "mm")]
    for i in range(n_shots):
        names += [(f"shot{i}.rx", "mrad"), (f"shot{i}.ry", "mrad"), (f"shot{i}.rz", "mrad"),
                  (f"shot{i}.G", "")]
    return names


def _random_rotation(rng) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return np.asarray(R.rotvec_to_matrix(jnp.asarray(axis * rng.uniform(0.2, np.pi))))


@dataclasses.dataclass
class Problem:
    """The simulated shots and the shoebox pixels (stacked and padded to one bucket).

    With a shot bucket the shot axis holds ``n_shots`` real shots, then padding
    (``refine.pad_shots``: weight 0, parameters inactive); θ is 3 + 4·bucket long.
    """

    setup: object
    base: object  # Params (orientation "matrix")
    U0: np.ndarray  # (bucket, 3, 3) indexed (true) orientations; θ's rotvec corrects them
    x_true: np.ndarray
    x_start: np.ndarray
    scale: np.ndarray  # one unit of the scaled coordinates u = (x − x_start)/scale
    S: jnp.ndarray  # (shots, bucket) slow indices
    F: jnp.ndarray  # (shots, bucket)
    P: jnp.ndarray  # (shots, bucket) panel indices (0 for the single detector)
    weight: jnp.ndarray  # (shots, bucket): 1 for shoebox pixels, 0 for padding
    data: jnp.ndarray  # (shots, bucket) counts
    n_pixels: int
    n_spots: int
    model: Callable  # (x, U0, S, F, P) → μ (shots, bucket)
    n_shots: int  # real shots (the first n_shots rows of every shot axis)
    active: np.ndarray  # (len θ,) bool: False for the parameters of padded shots
    panels: object = None  # the PanelStack of every shot's detector, or None (one detector)


def make_model(setup, base, panels=None) -> Callable:
    """(x, U0, S, F, P) → μ (shots, bucket): the expected counts of every shot at its pixels.

    U0 (shots, 3, 3) and the pixel lists are arguments (not constants), so one
    compiled program serves every problem of the same shape.  With ``panels``
    (a ``PanelStack`` at the reference distance ``DISTANCE``) the distance moves
    every panel along the beam by x[2] − DISTANCE (``refine.panel_pose`` with
    one shift for all panels) and P holds each pixel's panel.
    """
    beam = np.asarray(base.beam_vector, np.float64)
    beam = beam / np.linalg.norm(beam)

    def model(x, U0, S, F, P):
        cell = R.cell_from_lattice(x[:2], "tetragonal")
        per_shot = x[3:].reshape(-1, 4)
        B = R.b_matrix(cell)
        moved = None if panels is None else R.panel_pose(panels, (x[2] - DISTANCE) * beam)

        def one(rotvec_mrad, G, U, s, f, pn):
            p = base.replace(recip_matrix=R.rotvec_to_matrix(rotvec_mrad * 1e-3) @ U @ B)
            if moved is None:
                photons = pixel_values(setup, p.replace(distance=x[2]), s, f)
            else:
                photons = pixel_values(setup, p, s, f, panel_idx=pn, panels=moved)
            return G * photons + BACKGROUND

        return jax.vmap(one)(per_shot[:, :3], per_shot[:, 3], U0, S, F, P)

    return model


def panel_grid(exp, gap_mm: float = 1.0):
    """The 128² detector of ``exp`` cut into 2 × 2 panels of 64², ``gap_mm`` apart (a PanelStack)."""
    from nanobragg_jax.panels import PanelStack

    px = float(exp.params.pixel_size)
    n = exp.setup.fpixels // 2
    o, f, s = np.asarray(exp.info["pix0"]) * 1e3, np.asarray(exp.info["fdet"]), np.asarray(exp.info["sdet"])
    origins = [o + (j * (n * px + gap_mm) - gap_mm / 2) * f + (i * (n * px + gap_mm) - gap_mm / 2) * s
               for i in (0, 1) for j in (0, 1)]
    return PanelStack(origin=np.stack(origins), fast=np.stack([f] * 4), slow=np.stack([s] * 4), n_fast=n,
                      n_slow=n, pixel_size=px)


def make_problem(seed: int = 0, size: int = 128, pixel: float = 0.4, n_shots: int = N_SHOTS,
                 bucket: Optional[int] = None, panels: bool = False,
                 shot_bucket: Optional[int] = None) -> Problem:
    """Simulate ``n_shots`` stills and cut their shoeboxes.

    ``bucket`` fixes the padded pixels per shot and ``shot_bucket`` the padded
    shot count (default: no padding), so that problems with fewer pixels or
    shots share one compiled ``Refiner``.
    """
    rng = np.random.default_rng(seed)
    exp = from_cli_args(FLAGS.format(n=size, px=pixel).split())
    setup, base, _ = R.to_matrix_orientation(exp.setup, jax.tree_util.tree_map(jnp.asarray, exp.params))
    base = base.replace(fluence=base.fluence * FLUENCE_SCALE)
    U0 = np.stack([_random_rotation(rng) for _ in range(n_shots)])
    x_true = np.concatenate([[40.0, 55.0, 80.0]] + [[0.0, 0.0, 0.0, g] for g in
                                                    rng.uniform(0.7, 1.3, n_shots)])
    scale = np.concatenate([[PERTURB["cell"]] * 2, [PERTURB["distance"]]]
                           + [[PERTURB["rotvec"]] * 3 + [PERTURB["scale"]]] * n_shots)
    x_start = x_true + rng.choice([-1.0, 1.0], size=len(x_true)) * scale
    stack = panel_grid(exp) if panels else None
    model = make_model(setup, base, stack)

    # Shoeboxes from the starting model (as with real data: predicted, then refined).
    boxes, n_spots = [], 0
    for i in range(n_shots):
        cell = np.asarray(R.cell_from_lattice(jnp.asarray(x_start[:2]), "tetragonal"))
        rv = x_start[3 + 4 * i:6 + 4 * i] * 1e-3
        p = base.replace(recip_matrix=np.asarray(R.rotvec_to_matrix(jnp.asarray(rv))) @ U0[i]
                         @ np.asarray(R.b_matrix(jnp.asarray(cell))), distance=x_start[2])
        beam = np.asarray(base.beam_vector, np.float64)
        moved = (None if stack is None
                 else R.panel_pose(stack, (x_start[2] - DISTANCE) * beam / np.linalg.norm(beam)))
        spots = predict_spots(setup, p, d_min=D_MIN, panels=moved)
        boxes.append(shoeboxes(spots, setup, HALF_BOX, panels=moved))
        n_spots += len(spots)
    n_max = max(len(b) for b in boxes)
    size_b = max(bucket or 0, bucket_size(n_max))
    S, F, P, W = [], [], [], []
    for b in boxes:
        s, f, pn, n = pad_pixels(b.slow, b.fast, size_b, panel_idx=b.panel)
        S.append(s)
        F.append(f)
        P.append(pn)
        W.append(jnp.arange(size_b) < n)
    S, F, P, W = jnp.stack(S), jnp.stack(F), jnp.stack(P), jnp.stack(W).astype(jnp.float64)
    active = np.ones(len(x_true), bool)
    if shot_bucket is not None:
        # Padded shots repeat shot 0 with zero weight; their θ entries are inactive.
        per_shot = [v[3:].reshape(n_shots, 4) for v in (x_true, x_start, scale)]
        (U0, S, F, P, W, *per_shot), w_shot = R.pad_shots((U0, S, F, P, W, *per_shot), shot_bucket)
        W = W * w_shot[:, None]
        U0 = np.asarray(U0)
        x_true, x_start, scale = (np.concatenate([v[:3], np.asarray(b).ravel()])
                                  for v, b in zip((x_true, x_start, scale), per_shot))
        active = np.concatenate([[True] * 3, np.repeat(np.asarray(w_shot) > 0, 4)])
    mu_true = np.asarray(jax.jit(model)(jnp.asarray(x_true), jnp.asarray(U0), S, F, P))
    data = jnp.asarray(rng.poisson(mu_true).astype(np.float64)) * W
    return Problem(setup, base, U0, x_true, x_start, scale, S, F, P, W, data,
                   int(sum(len(b) for b in boxes)), n_spots, model, n_shots, active, stack)


@dataclasses.dataclass
class Result:
    x: np.ndarray
    sigma: np.ndarray
    loss: list
    seconds: dict
    converged: bool = True  # Newton decrement below the tolerance
    decrement: float = 0.0  # gᵀF⁻¹g at the estimate
    scoring_steps: int = 0


class Refiner:
    """Compiled loss, gradient and Jacobian for problems of one shape (reused across seeds)."""

    def __init__(self, problem: Problem):
        model = problem.model

        def gn_parts(x, U0, S, F, P, W, n):
            """Gradient of the NLL and the Fisher information from one Jacobian."""
            f = lambda y: model(y, U0, S, F, P).ravel()  # noqa: E731
            J = jax.jacfwd(f)(x)
            mu = f(x)
            w = W.ravel()
            grad = J.T @ (w * (1.0 - n.ravel() / mu))
            info = (J * (w / mu)[:, None]).T @ J
            return jnp.sum(w * (mu - n.ravel() * jnp.log(mu))), grad, info

        # One compiled program gives the loss, its gradient Jᵀ(1 − n/μ) and the Fisher
        # information; Adam uses its gradient too (a reverse-mode program would be a
        # second compile for the same numbers).
        self.gn_parts = jax.jit(gn_parts)

    def run(self, p: Problem, adam_steps: int = 20, adam_lr: float = 0.02, gn_steps: int = 40,
            tol: float = 1e-8, log: Optional[Callable[[str], None]] = None) -> Result:
        """Adam, then damped Fisher scoring until converged (at most ``gn_steps`` steps).

        Converged means a Newton decrement gᵀF⁻¹g below ``tol``: the step still to
        go is then below √tol standard errors in every parameter (|δᵢ|/σᵢ ≤ √(gᵀF⁻¹g)),
        so the estimate is the optimum for the purpose of a z-score.  A fixed
        step count is not enough: from some starts scoring needs 8–10 steps.
        """
        if optax is None:
            raise SystemExit(OPTAX_MISSING)
        log = log or (lambda s: None)
        args = (jnp.asarray(p.U0), p.S, p.F, p.P, p.weight, p.data)
        x0, scale = jnp.asarray(p.x_start), jnp.asarray(p.scale)
        seconds, losses = {}, []
        t = time.perf_counter()
        u = jnp.zeros_like(x0)
        adam = optax.adam(adam_lr)
        state = adam.init(u)
        for _ in range(adam_steps):
            loss, g, _ = self.gn_parts(x0 + scale * u, *args)
            losses.append(float(loss))
            updates, state = adam.update(g * scale, state, u)
            u = optax.apply_updates(u, updates)
        seconds["adam"] = time.perf_counter() - t
        log(f"adam: {adam_steps} steps, loss {losses[-1] if losses else float('nan'):.3f}")
        # Fisher scoring (Gauss–Newton for Poisson counts) with Levenberg–Marquardt
        # damping: solve (F + λ·diag F) δ = ∇L; accept δ if the loss does not
        # increase (then λ /= 10), else λ *= 10 and try again.
        t = time.perf_counter()
        x = x0 + scale * u
        lam = 1e-3
        loss, g, info = self.gn_parts(x, *args)
        steps, decrement = 0, float("inf")
        for steps in range(gn_steps + 1):
            losses.append(float(loss))
            decrement = float(g @ jnp.asarray(R.covariance(info, p.active)) @ g)
            if decrement < tol or steps == gn_steps:
                break
            for _ in range(12):
                damped = info + lam * jnp.diag(jnp.diag(info))
                trial = x - jnp.asarray(R.covariance(damped, p.active)) @ g
                t_loss, t_g, t_info = self.gn_parts(trial, *args)
                if float(t_loss) <= float(loss):
                    x, loss, g, info = trial, t_loss, t_g, t_info
                    lam = max(lam / 10.0, 1e-9)
                    break
                lam *= 10.0
            else:  # no decrease even with heavy damping: stuck
                break
        seconds["fisher scoring"] = time.perf_counter() - t
        log(f"fisher scoring: {steps} steps, loss {losses[-1]:.3f}, Newton decrement {decrement:.1e}; "
            "per step " + ", ".join(f"{v:.3f}" for v in losses[-steps - 1:]))
        return Result(np.asarray(x), np.asarray(R.standard_errors(info, p.active)), losses, seconds,
                      decrement < tol, decrement, steps)


def table(p: Problem, r: Result) -> str:
    lines = [f"{'parameter':10s} {'unit':4s} {'truth':>10s} {'start':>10s} {'estimate':>10s} "
             f"{'σ':>9s} {'(est−truth)/σ':>14s}"]
    for k, (name, unit) in enumerate(parameter_names(p.n_shots)):  # padding comes last
        z = (r.x[k] - p.x_true[k]) / r.sigma[k]
        lines.append(f"{name:10s} {unit:4s} {p.x_true[k]:10.5f} {p.x_start[k]:10.5f} {r.x[k]:10.5f} "
                     f"{r.sigma[k]:9.5f} {z:14.2f}")
    return "\n".join(lines)


def z_scores(p: Problem, r: Result) -> np.ndarray:
    """(estimate − truth)/σ of the active parameters (padded shots' are left out)."""
    return ((r.x - p.x_true) / np.where(p.active, r.sigma, 1.0))[p.active]


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0", help="seed list: 3 or 0-9 or 0,4,7")
    ap.add_argument("--size", type=int, default=128, help="detector pixels per side")
    ap.add_argument("--pixel", type=float, default=0.4, help="pixel size (mm)")
    ap.add_argument("--adam-steps", type=int, default=20)
    ap.add_argument("--gn-steps", type=int, default=40, help="most Fisher-scoring steps (it stops "
                    "when converged: Newton decrement < 1e-8)")
    ap.add_argument("--bucket", type=int, default=0,
                    help="padded pixels per shot (0: the next power of two; fix it to share a "
                         "compiled program between seeds)")
    ap.add_argument("--shots", type=int, default=N_SHOTS, help="stills per problem")
    ap.add_argument("--shot-bucket", type=int, default=0,
                    help="padded shots per problem (0: none; ≥ --shots pads with zero-weight shots, so "
                         "one compiled program serves every shot count up to it)")
    ap.add_argument("--verbose", action="store_true", help="print the loss after each stage")
    ap.add_argument("--panels", action="store_true", help="each detector as 2 × 2 panels of 64² with "
                    "1 mm gaps (the distance then moves every panel along the beam)")
    args = ap.parse_args(argv)
    if args.shots < 1:
        ap.error(f"--shots {args.shots}: at least one shot")
    if args.shot_bucket and args.shot_bucket < args.shots:
        ap.error(f"--shot-bucket {args.shot_bucket} is smaller than --shots {args.shots}")
    if optax is None:
        print(OPTAX_MISSING, file=sys.stderr)
        return 2
    t_all = time.perf_counter()
    refiner, worst, ok = None, 0.0, True
    bucket = args.bucket or None
    for seed in _seeds(args.seeds):
        t0 = time.perf_counter()
        p = make_problem(seed, args.size, args.pixel, n_shots=args.shots, bucket=bucket,
                         panels=args.panels, shot_bucket=args.shot_bucket or None)
        bucket = p.S.shape[1]  # later seeds reuse the compiled programs when they fit
        if refiner is None:
            refiner = Refiner(p)
        r = refiner.run(p, args.adam_steps, gn_steps=args.gn_steps,
                        log=print if args.verbose else None)
        z = z_scores(p, r)
        worst = max(worst, float(np.abs(z).max()))
        ok &= bool(np.all(np.abs(z) < 3)) and r.converged
        print(f"\nseed {seed}: {p.n_shots} shots, {p.n_spots} spots, {p.n_pixels} shoebox pixels "
              f"({100 * p.n_pixels / (p.n_shots * args.size ** 2):.1f} % of the detectors), "
              f"{float(jnp.sum(p.data)):.4g} counts; {r.scoring_steps} scoring steps, "
              f"{'converged' if r.converged else 'NOT CONVERGED'} (Newton decrement {r.decrement:.1e}); "
              f"{time.perf_counter() - t0:.1f} s")
        print(table(p, r))
    print(f"\nworst |error|/σ over all seeds and parameters: {worst:.2f} "
          f"({'all within 3σ' if ok else 'NOT all within 3σ'}); total {time.perf_counter() - t_all:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
