"""``nanoBragg-shots`` (issue 11): NXmx stack, per-shot ground truth, kill-and-resume, -expt,
parts of several processes joined by a virtual master file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filter the stacks are written with)
import numpy as np
import pytest

from nanobragg_jax import dataset

from nxmx_check import check_nxmx
from processes import free_port, run_together

ROOT = Path(__file__).resolve().parents[1]
PANELS = Path(__file__).parent / "data" / "panels"
FLAGS = ("-cell 50 60 70 90 95 90 -N 4 -default_F 100 -lambda 1.0 -detpixels 16 -pixel 1.5 "
         "-distance 50 -oversample 1").split()
OPTS = ["--shots", "8", "--seed", "5", "--spectrum", "sase", "--channels", "3", "--chunk", "2",
        "--devices", "1", "--no-progress"]


def _cmd(out):
    return [sys.executable, "-m", "nanobragg_jax.dataset", *OPTS, "-o", str(out), *FLAGS]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")


def _read(path):
    with h5py.File(path, "r") as f:
        out = {"data": f["/entry/data/data"][...]}
        for k in f["/entry/shots"]:
            out[k] = f["/entry/shots"][k][...]
        out["run"] = f["/entry"].attrs["run"]
    return out


def test_interrupted_run_resumes_to_the_same_file(tmp_path):
    fresh = tmp_path / "fresh.h5"
    r = subprocess.run(_cmd(fresh), env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ref = _read(fresh)
    assert ref["data"].shape == (8, 16, 16) and ref["data"].dtype == np.float32
    assert np.all(ref["done"] == 1) and ref["wavelengths"].shape == (8, 3)
    assert np.all(ref["data"].reshape(8, -1).max(axis=1) > 0)

    # kill -9 after the second block (4 of 8 shots) is flushed
    part = tmp_path / "killed.h5"
    p = subprocess.Popen(_cmd(part), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        lines = 0
        for line in p.stdout:
            if "shots written" in line:
                lines += 1
                if lines == 2:
                    os.kill(p.pid, signal.SIGKILL)
                    break
        p.wait(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGKILL
    half = _read(part)
    assert 4 <= half["done"].sum() < 8
    kept = half["data"][half["done"] == 1]

    r = subprocess.run(_cmd(part), env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"/{8 - int(half['done'].sum())} shots" in r.stdout  # only the missing shots rendered
    again = _read(part)
    np.testing.assert_array_equal(again["data"][half["done"] == 1], kept)
    for k in ref:
        np.testing.assert_array_equal(again[k], ref[k], err_msg=k)


def test_ground_truth_matches_random_shots_and_images(tmp_path):
    import jax

    jax.config.update("jax_enable_x64", True)
    from nanobragg_jax.experiment import from_cli_args
    from nanobragg_jax.shots import random_shots, simulate_shots

    out = tmp_path / "d.h5"
    opts = ["--shots", "3", "--seed", "9", "--fluence-cv", "0.2", "--no-progress", "-o", str(out)]
    assert dataset.main(opts + FLAGS) == 0
    got = _read(out)
    exp = from_cli_args(FLAGS)
    with h5py.File(out, "r") as f:
        check_nxmx(f, *_geometry(FLAGS), n_images=3, pixel_size=1.5)
        assert f["/entry/instrument/beam/incident_wavelength"].shape == (3, 1)
        np.testing.assert_array_equal(f["/entry/shots/index"][...], [0, 1, 2])
    sh = random_shots(exp.setup, exp.params, 3, 9, fluence_cv=0.2)
    np.testing.assert_array_equal(got["orientation_U"], sh.U)
    np.testing.assert_array_equal(got["fluence"], sh.fluence)
    np.testing.assert_allclose(got["reciprocal_matrix"], sh.recip_matrix)
    imgs = np.asarray(simulate_shots(exp.setup, exp.params, sh)).astype(np.float32)
    np.testing.assert_allclose(got["data"], imgs, rtol=1e-6, atol=1e-6 * imgs.max())
    # a different command on the same file is refused
    assert dataset.main(["--shots", "3", "--seed", "10", "--no-progress", "-o", str(out)] + FLAGS) == 2


def test_usage_errors(capsys):
    assert dataset.main(["-o", "x.h5"] + FLAGS) == 2
    assert "--shots" in capsys.readouterr().err
    assert dataset.main(["--shots", "2", "-o", "x.h5", "--bogus"] + FLAGS) == 2
    assert dataset.main(["--shots", "2", "-o", "x.h5", "-bogus_flag"]) == 2
    assert dataset.main(["--help"]) == 0


def test_a_file_that_is_not_a_dataset_is_refused(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    assert dataset.main(["--shots", "2", "--no-progress", "-o", str(junk)] + FLAGS) == 2
    assert "junk.h5" in capsys.readouterr().err and junk.read_bytes() == b"not hdf5"


def test_two_processes_write_parts_joined_by_a_virtual_master(tmp_path):
    """2 jax.distributed processes on localhost: each writes its own NXmx part; process 0 writes
    OUT as the master (virtual datasets), which reads as the one-process dataset — also after
    the folder is moved."""
    import shutil

    port = free_port()
    opts = ["--shots", "5", "--seed", "2", "--no-progress", "--devices", "1"]
    whole = tmp_path / "whole.h5"
    assert subprocess.run([sys.executable, "-m", "nanobragg_jax.dataset", *opts, "-o", str(whole),
                           *FLAGS], env=_env(), capture_output=True, timeout=600).returncode == 0
    run = tmp_path / "run"
    run.mkdir()
    out = run / "multi.h5"
    run_together([[sys.executable, "-m", "nanobragg_jax.dataset", *opts, "-o", str(out),
                   "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                   "--process-id", str(p), *FLAGS] for p in range(2)], env=_env())
    ref = _read(whole)
    parts = [_read(run / f"multi.part{p}of2.h5") for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([q["index"] for q in parts]), np.arange(5))
    assert all(np.all(q["done"] == 1) for q in parts)
    moved = tmp_path / "moved"
    shutil.move(str(run), str(moved))  # the master finds its parts by relative name
    master = _read(moved / "multi.h5")
    for k in ("data", "index", "done", "orientation_U", "wavelengths", "weights", "fluence"):
        np.testing.assert_allclose(master[k], ref[k], rtol=1e-6, atol=1e-6 * np.abs(ref[k]).max(), err_msg=k)
    with h5py.File(moved / "multi.h5", "r") as f:
        assert f["/entry/data/data"].is_virtual
        assert len(f["/entry/data/data"].virtual_sources()) == 2
        check_nxmx(f, *_geometry(FLAGS), n_images=5, pixel_size=1.5)
    with h5py.File(moved / "multi.part1of2.h5", "r") as f:
        check_nxmx(f, *_geometry(FLAGS), n_images=3, pixel_size=1.5)


def _geometry(flags) -> tuple:
    """(panels, beam travel, polarisation normal) of a simulation, lab frame, for check_nxmx."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from nanobragg_jax.experiment import from_cli_args
    from nanobragg_jax.io.expt import model_from_experiment

    exp = from_cli_args(flags)
    truth = model_from_experiment(exp)
    panels = [dict(origin=p.origin, fast=p.fast_axis, slow=p.slow_axis, n_fast=p.n_fast, n_slow=p.n_slow)
              for p in truth.panels]
    return panels, exp.params.beam_vector, truth.beam.polarization_normal


def _grid_layout() -> dict:
    import json

    with open(PANELS / "manifest.json") as fh:
        return json.load(fh)["layouts"]["grid2x2"]


def test_expt_multi_panel_dataset_matches_c(tmp_path):
    """-expt with 4 panels: an NXmx stack (n, 4, slow, fast); with --orientations base and one
    wavelength every shot is the C program's image of each panel (random orientations: each
    shot = simulate_panels of that shot, tests/test_shots.py)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from golden import compare, passes

    layout = _grid_layout()
    expt = str(PANELS / layout["expt"])
    flags = ["-expt", expt] + layout["expt_args"]
    base = tmp_path / "base.h5"
    assert dataset.main(["--shots", "2", "--orientations", "base", "--no-progress", "--chunk", "2",
                         "-o", str(base)] + flags) == 0
    with np.load(PANELS / "grid2x2.npz") as z:
        ref = z["float"]
    from nanobragg_jax.io.expt import read_expt

    lab = [dict(p, n_fast=48, n_slow=40) for p in layout["panels"]]
    normal = read_expt(expt).beam.polarization_normal
    with h5py.File(base, "r") as f:
        check_nxmx(f, lab, layout["beam_vector"], normal, n_images=2, pixel_size=0.2)
        data = f["/entry/data/data"][...]
        np.testing.assert_array_equal(f["/entry/shots/orientation_U"][...], np.broadcast_to(np.eye(3), (2, 3, 3)))
    assert data.shape == (2, 4, 40, 48)
    for i in range(4):
        assert passes(compare(data[0, i], ref[i]), "float32"), i
    np.testing.assert_array_equal(data[0], data[1])


def test_expt_errors_name_the_flag(tmp_path, capsys):
    layout = _grid_layout()
    expt = str(PANELS / layout["expt"])
    out = tmp_path / "x.h5"
    assert dataset.main(["--shots", "2", "-o", str(out), "-expt", expt, "-distance", "100"]
                        + layout["expt_args"]) == 2
    assert "-distance" in capsys.readouterr().err
    assert dataset.main(["--shots", "2", "-o", str(out), "-expt", str(tmp_path / "missing.expt")]
                        + layout["expt_args"]) == 2
    assert "missing.expt" in capsys.readouterr().err
    assert not out.exists()


def test_bad_values_leave_no_file(tmp_path, monkeypatch, capsys):
    """Bad flags are refused before a file is made; a block with non-finite pixels (defence in
    depth: the estimates before rendering should prevent it) ends a fresh run without a file."""
    out = tmp_path / "x.h5"
    base = ["--shots", "2", "--no-progress", "-o", str(out)]
    nan_f = [a if a != "100" else "nan" for a in FLAGS]
    assert dataset.main(base + nan_f) == 2
    assert "-default_F" in capsys.readouterr().err and not out.exists()
    from nanobragg_jax import shots

    monkeypatch.setattr(shots, "simulate_shots", lambda *a, **k: np.full((2, 16, 16), np.nan))
    assert dataset.main(base + FLAGS) == 2
    assert "not finite" in capsys.readouterr().err and not out.exists()


def test_calling_the_command_from_python_leaves_x64_as_it_was(tmp_path):
    import jax

    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", False)
    try:
        assert dataset.main(["--shots", "1", "--seed", "3", "--no-progress", "-o", str(tmp_path / "x.h5")]
                            + FLAGS) == 0
        assert not jax.config.jax_enable_x64
    finally:
        jax.config.update("jax_enable_x64", before)
