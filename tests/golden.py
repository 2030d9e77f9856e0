"""Access to the reference C program's golden corpus (tests/golden/, shipped with the project).

``NB_GOLDEN_DIR`` points the tests at another copy.  The corpus is part of the repository, so a
missing corpus is an error of the checkout, not a reason to skip: :func:`require` fails the test
with a message saying where it looked (docs/parity.md says how to regenerate it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np


def golden_dir() -> Path:
    env = os.environ.get("NB_GOLDEN_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "golden"


def available() -> bool:
    return (golden_dir() / "cases" / "manifest.json").is_file()


MISSING_ID = "golden-corpus-missing"


def missing_message() -> str:
    return (f"golden corpus not found at {golden_dir()} (it ships in tests/golden/; "
            "NB_GOLDEN_DIR overrides; docs/parity.md says how to regenerate it)")


def require() -> None:
    """Fail the calling test (never skip) when the corpus is absent."""
    if not available():
        import pytest

        pytest.fail(missing_message(), pytrace=False)


def case_ids() -> list[str]:
    """Every case id, or one placeholder id whose test then fails through :func:`require`."""
    return [c["id"] for c in manifest()] if available() else [MISSING_ID]


def manifest() -> list[dict]:
    with open(golden_dir() / "cases" / "manifest.json") as fh:
        return json.load(fh)


def case(case_id: str) -> dict:
    return {c["id"]: c for c in manifest()}[case_id]


def arrays(case_id: str) -> dict:
    with np.load(golden_dir() / "cases" / f"{case_id}.npz") as z:
        return {k: z[k] for k in z.files}


def stage_inputs(rec: dict, workdir: Path) -> None:
    """Copy the case's input files into its working directory (as the C run had them)."""
    for name in rec.get("inputs", []):
        shutil.copy(golden_dir() / "inputs" / name, workdir / name)


def full_args(rec: dict) -> list[str]:
    """The flags exactly as the C program ran them: the case's own, then the outputs.

    The trailing output flags matter: the C program tests ``argc > i+1`` for some
    flags (``-curved_det``) and reads the next three words after ``-misset_seed``.
    """
    extra = ["-floatfile", "float.bin", "-intfile", "int.img", "-nopgm", "-noprogress"]
    extra += ["-noisefile", "noise.img"] if rec.get("noise") else ["-nonoise"]
    return list(rec["args"]) + extra


def compare(ours: np.ndarray, ref: np.ndarray) -> dict:
    """The corpus's comparison figures: correlation, sum ratio, max |Δ| / max(C)."""
    a = np.asarray(ours, np.float64).ravel()
    c = np.asarray(ref, np.float64).ravel()
    if a.std() == 0 or c.std() == 0:
        corr = 1.0 if np.allclose(a, c) else 0.0
    else:
        corr = float(np.corrcoef(a, c)[0, 1])
    return dict(
        corr=corr,
        sum_ratio=float(a.sum() / c.sum()) if c.sum() != 0 else float("nan"),
        max_rel=float(np.abs(a - c).max() / np.abs(c).max()) if c.max() != 0 else float(np.abs(a - c).max()),
    )


THRESHOLDS = {"float64": (0.999999, 1e-5, 1e-5), "float32": (0.9999, 1e-3, 1e-3)}


def passes(fig: dict, dtype: str = "float64") -> bool:
    corr, sum_tol, max_tol = THRESHOLDS[dtype]
    return fig["corr"] >= corr and abs(fig["sum_ratio"] - 1) <= sum_tol and fig["max_rel"] <= max_tol


def experiment(rec: dict, workdir: Path):
    """``from_cli_args`` of a case as the C program ran it: its inputs staged in ``workdir``,
    parsed there (relative file names resolve as in the C run)."""
    from nanobragg_jax import from_cli_args

    stage_inputs(rec, workdir)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        return from_cli_args(full_args(rec))
    finally:
        os.chdir(cwd)
