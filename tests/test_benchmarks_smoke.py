"""The benchmark suite cannot rot: its smoke mode runs end to end (tiny sizes, no timing claims).

``python -m benchmarks --smoke`` runs every kind of job (forward in both
dtypes, jax.grad, a vmap batch, the command line; the C program when NB_C_BIN
names one) in a separate process, and must write a well-formed JSON record and
Markdown table.  The report logic (ratios, targets) is checked on a synthetic
session.
"""

from __future__ import annotations

import json

import pytest
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import report  # noqa: E402

RECORD_KEYS = {"id", "group", "case", "impl", "mode", "dtype", "flags"}
TIMED_KEYS = {"warm_s", "compile_s", "pixels_per_s", "subpaths_per_s", "peak_rss_mb"}


@pytest.mark.slow  # 160 s on 2 shared cores: the slow tier (pytest -m slow)
def test_smoke_suite_runs_and_writes_results(tmp_path):
    env = dict(os.environ)
    env.pop("NB_TORCH_SRC", None)
    env.setdefault("NANOBRAGG_JAX_CACHE", str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    session = json.loads((tmp_path / "results.json").read_text())
    assert session["mode"] == "smoke"
    assert session["timestamp"] and session["machine"]["cores"] >= 1
    assert session["versions"]["jax"] and session["versions"]["nanobragg_jax"]
    results = session["results"]
    modes = {(r["impl"], r["mode"], r["dtype"]) for r in results}
    assert {("jax", "forward", "float32"), ("jax", "forward", "float64"), ("jax", "grad", "float32"),
            ("jax", "vmap", "float32"), ("jax", "cli", "float32")} <= modes
    for r in results:
        assert RECORD_KEYS <= r.keys()
        assert "error" not in r, r
        if "skipped" in r:
            continue
        assert r["warm_s"] > 0
        if r["impl"] == "jax" and r["mode"] in ("forward", "grad", "vmap"):
            assert TIMED_KEYS <= r.keys(), r
            assert r["pixels"] > 0 and r["subpaths_per_pixel"] >= 1
    grad = next(r for r in results if r["mode"] == "grad")
    assert grad["grad_finite"] and grad["grad_over_forward"] > 0
    heavy = next(r for r in results if r["case"].startswith("heavy") and r["mode"] == "forward")
    assert heavy["subpaths_per_pixel"] == 480

    md = (tmp_path / "results.md").read_text()
    assert "| case |" in md and "## jax.grad of the image sum" in md


def test_ratios_and_targets_from_a_session():
    def rec(**kw):
        base = dict(id="x", flags="", mode="forward")
        base.update(kw)
        return base

    session = dict(
        timestamp="t", machine={}, versions={}, settings=dict(devices=1, threads=2),
        results=[
            rec(group="main", case="canonical_1024", impl="jax", dtype="float32", warm_s=0.01,
                pixels=4, subpaths_per_pixel=1),
            rec(group="main", case="canonical_1024", impl="jax", dtype="float64", warm_s=0.05,
                pixels=4, subpaths_per_pixel=1),
            rec(group="main", case="canonical_1024", impl="c", dtype="float64", warm_s=0.1),
            rec(group="main", case="canonical_1024", impl="torch", dtype="float32", warm_s=0.02),
            rec(group="grad", case="heavy_256", impl="jax", dtype="float32", mode="grad", warm_s=1.0,
                grad_over_forward=5.0),
            rec(group="memory", case="heavy_2048", impl="jax", dtype="float32", warm_s=1.0,
                peak_rss_mb=1000.0),
        ])
    report.add_ratios(session)
    f32, f64 = session["results"][0], session["results"][1]
    assert abs(f32["vs_c"] - 10.0) < 1e-9 and abs(f32["vs_torch_f32"] - 2.0) < 1e-9
    assert abs(f64["vs_c"] - 2.0) < 1e-9
    targets = {t["target"]: t["met"] for t in report.evaluate_targets(session)}
    assert targets["canonical float32 vs C (×)"] is True
    assert targets["canonical_1024 float32 vs port float32 (×)"] is False
    assert targets["heavy_256 float32 grad / forward"] is False
    assert targets["heavy_2048 float32 peak memory (MB)"] is True
    assert "| canonical_1024 |" in report.markdown(session)
