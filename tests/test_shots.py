"""Batched shots (issue 11): shot = single simulate, SO(3) sampling, devices and hosts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from processes import free_port, run_together  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax import shots as S  # noqa: E402
from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402

ARGS = ("-cell 50 60 70 90 95 90 -N 5 -default_F 100 -lambda 1.0 -detpixels 16 -pixel 1.5 "
        "-distance 50 -oversample 1").split()
CHILD = Path(__file__).parent / "_shots_child.py"
ROOT = Path(__file__).resolve().parents[1]


def _check_each_shot(exp, sh, imgs):
    assert imgs.shape == (sh.n_shots, exp.setup.spixels, exp.setup.fpixels)
    for i in range(sh.n_shots):
        one = np.asarray(simulate(*S.single_shot(exp.setup, exp.params, sh, i)))
        assert one.max() > 0
        np.testing.assert_allclose(imgs[i], one, rtol=1e-12, atol=1e-12 * one.max())


def test_each_shot_equals_single_simulate_sase_and_padding():
    exp = from_cli_args(ARGS)
    sh = S.random_shots(exp.setup, exp.params, 5, seed=3, spectrum="sase", n_channels=4,
                        fluence_cv=0.3)
    imgs = np.asarray(S.simulate_shots(exp.setup, exp.params, sh, chunk=2))  # 5 = 2+2+1(padded)
    _check_each_shot(exp, sh, imgs)
    assert len(set(np.round(sh.fluence, 6))) == 5


def test_each_shot_with_per_shot_size_and_mosaic():
    exp = from_cli_args(ARGS + ["-mosaic", "0.5", "-mosaic_domains", "3", "-phisteps", "1"])
    sh = S.random_shots(exp.setup, exp.params, 3, seed=5)
    sh = sh._replace(N=np.array([[3.0, 4, 5], [6, 6, 6], [2, 5, 9]]),
                     mosaic_spread=np.array([0.0, 0.3, 1.0]))
    imgs = np.asarray(S.simulate_shots(exp.setup, exp.params, sh))
    _check_each_shot(exp, sh, imgs)
    assert not np.allclose(imgs[0] / imgs[0].sum(), imgs[1] / imgs[1].sum())


def test_each_shot_of_a_multi_panel_detector_equals_simulate_panels():
    """panels=: every shot renders every panel; shot i = simulate_panels of that shot."""
    from nanobragg_jax.panels import PanelStack, simulate_panels

    exp = from_cli_args(ARGS)
    stack = PanelStack(origin=np.array([[50.0, -12, -12], [50.0, -12, 1]]), fast=np.array([[0.0, 0, 1]] * 2),
                       slow=np.array([[0.0, 1, 0], [0.0, 1, 0]]), n_fast=10, n_slow=7, pixel_size=1.5)
    sh = S.random_shots(exp.setup, exp.params, 3, seed=4, spectrum="sase", n_channels=2)
    imgs = np.asarray(S.simulate_shots(exp.setup, exp.params, sh, chunk=2, panels=stack))
    assert imgs.shape == (3, 2, 7, 10)
    for i in range(3):
        one = np.asarray(simulate_panels(*S.single_shot(exp.setup, exp.params, sh, i), stack))
        assert one.max() > 0
        np.testing.assert_allclose(imgs[i], one, rtol=1e-12, atol=1e-12 * one.max())


def test_identity_orientation_is_the_base_image():
    """U = 1 with the base wavelength: the cell-setup image (matrix vs cell rounding only)."""
    exp = from_cli_args(ARGS + ["-misset", "10", "20", "30"])
    sh = S.random_shots(exp.setup, exp.params, 1, seed=0, orientations=np.eye(3)[None])
    img = np.asarray(S.simulate_shots(exp.setup, exp.params, sh))[0]
    ref = np.asarray(simulate(exp.setup, exp.params))
    np.testing.assert_allclose(img, ref, rtol=1e-9, atol=1e-9 * ref.max())


def test_random_rotations_uniform_on_so3_and_per_index():
    R = S.random_rotations(123, 4000)
    np.testing.assert_allclose(np.einsum("nji,njk->nik", R, R), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # Haar measure: E[R] = 0 (each entry has variance 1/3, so the mean's s.d. is ~0.009)
    assert np.max(np.abs(R.mean(axis=0))) < 0.05
    # a rotated axis is uniform on the sphere: each component uniform on [−1, 1] (Archimedes)
    v = R @ np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    for c in range(3):
        hist, _ = np.histogram(v[:, c], bins=10, range=(-1, 1))
        chi2 = np.sum((hist - 400) ** 2 / 400)
        assert chi2 < 30  # 9 d.o.f.: p ≈ 4e-4
    # rotation angle density (1 − cos θ)/π: E[cos θ] = −1/2·… → E[trace] = 0
    assert abs(np.mean(np.trace(R, axis1=1, axis2=2))) < 0.05
    # shot i depends only on (seed, i)
    np.testing.assert_array_equal(S.random_rotations(123, [7, 8]), R[7:9])


def test_process_shot_indices_cover_once():
    parts = [S.process_shot_indices(10, p, 3) for p in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(10))


def _run(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, str(CHILD), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(ROOT))


def test_two_cpu_devices_sharded_equals_unsharded(tmp_path):
    out = tmp_path / "dev.npz"
    r = _run(["devices", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    z = np.load(out)
    assert int(z["n_shards"]) == 2
    np.testing.assert_allclose(z["sharded"], z["single"], rtol=1e-12, atol=1e-12 * z["single"].max())


def test_two_processes_with_jax_distributed_union_equals_one_process(tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    run_together([[sys.executable, str(CHILD), "host", str(p), str(port), str(tmp_path / f"host{p}.npz")]
                  for p in range(2)], env=env, cwd=str(ROOT), timeout=300)
    r = _run(["single", str(tmp_path / "single.npz")])
    assert r.returncode == 0, r.stderr[-3000:]
    whole = np.load(tmp_path / "single.npz")["images"]
    parts = [np.load(tmp_path / f"host{p}.npz") for p in range(2)]
    assert all(int(z["process_count"]) == 2 for z in parts)
    idx = np.concatenate([z["indices"] for z in parts])
    np.testing.assert_array_equal(np.sort(idx), np.arange(whole.shape[0]))
    union = np.concatenate([z["images"] for z in parts])[np.argsort(idx)]
    np.testing.assert_allclose(union, whole, rtol=1e-12, atol=1e-12 * whole.max())


def test_each_shot_on_the_general_path_with_interpolation(tmp_path):
    """Tricubic interpolation (general kernel path, with its first-pass trigger) under vmap."""
    rng = np.random.default_rng(0)
    lines = [f"{h} {k} {l} {rng.uniform(10, 100):.3f}"
             for h in range(-6, 7) for k in range(-6, 7) for l in range(-6, 7)]
    (tmp_path / "f.hkl").write_text("\n".join(lines) + "\n")
    exp = from_cli_args(["-hkl", str(tmp_path / "f.hkl"), "-dump", str(tmp_path / "F.bin"), "-cell",
                         "30", "30", "30", "90", "90", "90", "-N", "2", "-lambda", "1", "-distance", "40",
                         "-detpixels", "8", "-pixel", "2", "-oversample", "1"])
    assert exp.setup.interpolate
    sh = S.random_shots(exp.setup, exp.params, 3, seed=2, spectrum="sase", n_channels=2)
    imgs = np.asarray(S.simulate_shots(exp.setup, exp.params, sh, chunk=2))
    _check_each_shot(exp, sh, imgs)


@pytest.mark.slow
def test_scaling_benchmark_runs_as_one_command():
    """benchmarks.shots --only scaling: one child, 1 vs 2 devices alternating (tiny sizes)."""
    r = subprocess.run([sys.executable, "-m", "benchmarks.shots", "--only", "scaling", "--det", "16",
                        "--block", "4", "--reps", "1"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"scaling_1_to_2"' in r.stdout and '"load_before"' in r.stdout
