"""The command line against the reference C program's files and log, for every golden case.

Each case runs ``nanoBragg`` once, in process (``cli.main``), with exactly the flags the C
program ran, in its own temporary folder; the outputs and the captured log are cached for the
module, and every test below reads them:

* the ``-intfile`` pixels equal the C program's ``int`` array within ±1 count;
* every SMV header key the C program wrote carries the same value, and our header is a valid
  one (every entry ends with ``;``, 512 bytes, ``}`` + form feed, space padding);
* the ``-floatfile`` passes the corpus's float64 thresholds;
* the printed log equals the C program's line by line (numbers to 5 significant digits),
  except the banner, the C's memory-address line and the fast-noise photon count;
* ``noise_seed``: ``-noise_exact`` reproduces the C noise image bit for bit, the default fast
  path is statistically equivalent to it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

import golden

pytestmark = pytest.mark.usefixtures("golden_corpus")  # fails, never skips, without the corpus

from nanobragg_jax.cli import main  # noqa: E402
from nanobragg_jax.io.smv import read_smv  # noqa: E402

CASE_IDS = golden.case_ids()


class Run:
    def __init__(self, rc: int, out: str, err: str, folder: Path):
        self.rc, self.out, self.err, self.folder = rc, out, err, folder


def run_cli(args: list[str], folder: Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(args)
    finally:
        os.chdir(cwd)
    return Run(rc, out.getvalue(), err.getvalue(), folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One CLI run per golden case (lazily), shared by every test of the module."""
    cache: dict[str, Run] = {}

    def get(case_id: str, extra: tuple[str, ...] = ()) -> Run:
        key = case_id + "|" + " ".join(extra)
        if key not in cache:
            rec = golden.case(case_id)
            folder = tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9_]", "_", case_id))
            golden.stage_inputs(rec, folder)
            cache[key] = run_cli(golden.full_args(rec) + list(extra), folder)
        return cache[key]

    return get


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_intfile_matches_c(case_id, runs):
    run = runs(case_id)
    assert run.rc == 0, run.err
    smv = read_smv(run.folder / "int.img")
    ref = golden.arrays(case_id)["int"]
    assert smv.data.shape == ref.shape
    diff = np.abs(smv.data.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= 1, f"max |Δ| = {diff.max()} counts at {np.unravel_index(diff.argmax(), diff.shape)}"


def _same_value(ours: str, theirs: str) -> bool:
    if ours == theirs:
        return True
    try:
        a = [float(x) for x in ours.split(",")]
        b = [float(x) for x in theirs.split(",")]
    except ValueError:
        return False
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-9) for x, y in zip(a, b))


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_smv_header_matches_c(case_id, runs):
    run = runs(case_id)
    assert run.rc == 0, run.err
    rec = golden.case(case_id)
    smv = read_smv(run.folder / "int.img")
    for key, value in rec["smv_header"].items():
        assert key in smv.header, f"missing header key {key}"
        assert _same_value(smv.header[key], value), f"{key}: ours {smv.header[key]!r}, C {value!r}"
    raw = (run.folder / "int.img").read_bytes()[:512]
    text = raw.decode("latin-1")
    assert text.startswith("{\nHEADER_BYTES=512;\n")
    body, _, tail = text.partition("}\f")
    assert tail == " " * len(tail)
    entries = body[2:].splitlines()
    assert entries and all(e.endswith(";") and "=" in e for e in entries), entries
    assert "DIALS_ORIGIN=" + rec["smv_header"]["DIALS_ORIGIN"] + ";" in entries or any(
        e.startswith("DIALS_ORIGIN=") and e.endswith(";") for e in entries)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_floatfile_matches_c(case_id, runs):
    run = runs(case_id)
    assert run.rc == 0, run.err
    rec = golden.case(case_id)
    data = np.fromfile(run.folder / "float.bin", dtype="<f4").reshape(rec["shape"])
    fig = golden.compare(data, golden.arrays(case_id)["float"])
    assert golden.passes(fig, "float32"), fig  # the file holds float32, as the C program's


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _lines_agree(ours: str, theirs: str) -> bool:
    """Same words; numbers equal to ~5 significant digits (a sign-of-zero slip is tolerated)."""
    if ours == theirs:
        return True
    if _NUM.sub("#", ours).split() != _NUM.sub("#", theirs).split():
        return False
    for a, b in zip(_NUM.findall(ours), _NUM.findall(theirs)):
        if not math.isclose(float(a), float(b), rel_tol=2e-5, abs_tol=1e-12):
            return False
    return True


def _comparable(lines: list[str]) -> list[str]:
    from nanobragg_jax.report import OWN_LOG_PREFIXES

    skip = OWN_LOG_PREFIXES + ("mmap(",)
    return [l for l in lines if not l.startswith(skip) and "photons on noise image" not in l]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_log_matches_c(case_id, runs):
    run = runs(case_id)
    assert run.rc == 0, run.err
    ours = _comparable(run.out.splitlines())
    theirs = _comparable(golden.case(case_id)["stdout"].splitlines())
    assert len(ours) == len(theirs), "\n".join(l for l in ours if l not in theirs)
    bad = [(a, b) for a, b in zip(ours, theirs) if not _lines_agree(a, b)]
    assert not bad, bad[:5]


def test_stats_lines_of_canonical_case(runs):
    """The figures users grep for, spelled exactly as the C program printed them."""
    run = runs("canonical_1024")
    rec = golden.case("canonical_1024")
    for key in ("max_I = ", "mean= ", "intfile_scale = ", "solid angle subtended", "  Fbeam=", "  dials origin="):
        c_line = next(l for l in rec["stdout"].splitlines() if l.startswith(key))
        assert c_line in run.out.splitlines(), key


# -- noise -----------------------------------------------------------------------------------


def test_noise_exact_equals_c(runs):
    run = runs("noise_seed", ("-noise_exact",))
    assert run.rc == 0, run.err
    ref = golden.arrays("noise_seed")["noise"]
    smv = read_smv(run.folder / "noise.img")
    assert smv.data.dtype == np.uint16 and smv.data.shape == ref.shape
    assert np.array_equal(smv.data, ref)
    c_line = next(l for l in golden.case("noise_seed")["stdout"].splitlines() if "photons on noise image" in l)
    assert c_line in run.out.splitlines()
    header = golden.case("noise_seed")["smv_header"]
    for key, value in header.items():
        assert _same_value(smv.header[key], value), key


def test_noise_fast_is_statistically_equivalent(runs):
    run = runs("noise_seed")
    assert run.rc == 0, run.err
    ref = golden.arrays("noise_seed")["noise"].astype(np.float64)
    expected = golden.arrays("noise_seed")["float"].astype(np.float64)
    ours = read_smv(run.folder / "noise.img").data.astype(np.float64)
    assert not np.array_equal(ours, ref)  # a different generator...
    adc = 40.0
    # ...with the same offset, mean and Poisson variance
    assert ours.min() >= adc - 0.0 and ref.min() >= adc
    total = expected.sum()
    for img in (ours, ref):
        counts = img - adc
        assert abs(counts.sum() - total) < 5 * math.sqrt(total)
        # Pearson χ²/n over the pixels with a mean ≥ 1 photon: below that a single rare count
        # (1 photon where 1e-6 are expected) adds 1e6 to the sum, so the statistic would
        # measure the seed's luck, not the variance
        sel = expected >= 1.0
        resid = (counts - expected)[sel]
        chi2 = float(np.sum(resid ** 2 / expected[sel]))
        assert abs(chi2 / sel.sum() - 1.0) < 0.15
    # zero-mean pixels stay at the offset exactly, in both
    zero = expected == 0
    assert np.all(ours[zero] == adc) and np.all(ref[zero] == adc)
    m = re.search(r"(\d+) photons on noise image \((\d+) overloads\)", run.out)
    assert m and int(m.group(2)) == 0
    assert abs(int(m.group(1)) - (ours - adc).sum()) < 1
