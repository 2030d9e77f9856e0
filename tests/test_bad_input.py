"""Bad input never produces a traceback or a partial file.

Every case runs ``nanoBragg`` (in process) in a folder holding only the prepared input files,
and asserts: exit status 2, exactly one line on stderr of the form ``nanoBragg: error: ...``
naming the flag or file and the problem, nothing on stdout, no traceback, and no new file in the
folder (no image, no temporary file, no structure-factor cache from the failed run).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nanobragg_jax.cli import main

GOOD = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-detpixels", "16",
        "-distance", "100", "-noprogress"]
CELL = ["-cell", "100", "100", "100", "90", "90", "90", "-detpixels", "16", "-noprogress"]
SMV_OK = (b"{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
          b"SIZE1=16;\nSIZE2=16;\nPIXEL_SIZE=0.1;\n}\f")


def _smv(header: bytes, data: bytes) -> bytes:
    return header + b" " * (512 - len(header)) + data


INPUTS = {
    "good.hkl": "0 0 0 10\n1 0 0 20\n0 1 0 30\n0 0 1 40\n-1 -1 -1 5\n",
    "empty.hkl": "",
    "blank.hkl": "\n   \n\n",
    "short.hkl": "1 2 3\n",
    "words.hkl": "h k l F\nfoo bar baz qux\n",
    "nan.hkl": "0 0 0 nan\n1 0 0 20\n",
    "inf.hkl": "0 0 0 inf\n1 0 0 20\n",
    "binary.hkl": bytes(range(256)) * 4,
    "good.mat": "0.01 0 0\n0 0.01 0\n0 0 0.01\n",
    "empty.mat": "",
    "short.mat": "0.01 0 0\n0 0.01 0\n",
    "words.mat": "this is not a matrix at all\n",
    "singular.mat": "0 0 0\n0 0 0\n0 0 0\n",
    "empty.img": b"",
    "short.img": SMV_OK[:100],
    "notsmv.img": b"P5\n16 16\n255\n" + bytes(600),
    "truncated.img": _smv(SMV_OK, bytes(100)),
    "badtype.img": _smv(SMV_OK.replace(b"unsigned_short", b"float_ieee"), bytes(512)),
    "nosize.img": _smv(SMV_OK.replace(b"SIZE1=16;\nSIZE2=16;\n", b""), bytes(512)),
    "empty.txt": "",
    "comments.txt": "# nothing here\n\n",
    "badlambda.txt": "-10 0 0 1 0\n",
    "Fdump.garbled": "1 2 3 4 5 6\nno form feed\n",
    # silent misreads of the C program (issue 12): each must be an error naming line and column
    "underscore.hkl": "0 0 0 10\n1_0 0 0 20\n",
    "arabic.hkl": "0 0 0 10\n\u0663 0 0 20\n",
    "underscore.mat": "0.01 0 0\n0 1_0 0\n0 0 0.01\n",
    "zero.txt": "0 0 -10 1 zero\n",
    "nan.txt": "0 0 -10 nan 1e-10\n",
    "garbage-suffix.txt": "0 0 -10x 1 1e-10\n",
    # magnitudes
    "bigF.hkl": "0 0 0 1e300\n1 0 0 20\n",
    "hugeindex.hkl": "0 0 0 10\n1e300 0 0 20\n",
    "wide.hkl": "100000 100000 100000 1\n-100000 -100000 -100000 1\n",
    "nan.fdump": b"0 0 0 0 0 0\n\f" + b"\xff" * 64,
    # SMV headers go through the same range table as the flags
    "bigpixel.img": _smv(SMV_OK.replace(b"PIXEL_SIZE=0.1", b"PIXEL_SIZE=1e308"), bytes(512)),
    "negdist.img": _smv(SMV_OK.replace(b"PIXEL_SIZE=0.1;", b"PIXEL_SIZE=0.1;\nDISTANCE=-100;"), bytes(512)),
    "nandist.img": _smv(SMV_OK.replace(b"PIXEL_SIZE=0.1;", b"PIXEL_SIZE=0.1;\nDISTANCE=nan;"), bytes(512)),
    "mask16.img": _smv(SMV_OK, b"\x01\x00" * 256),
}

# (id, argv, words the one-line message must contain)
CASES = [
    # the command line
    ("unknown-flag", GOOD + ["-frobnicate"], ["-frobnicate", "unknown flag"]),
    ("unknown-word", GOOD + ["hello"], ["'hello'"]),
    ("missing-value", GOOD + ["-lambda"], ["-lambda", "needs"]),
    ("missing-values", GOOD + ["-misset", "1", "2"], ["-misset", "needs 3"]),
    ("flag-as-file", GOOD + ["-hkl", "-nopgm"], ["-hkl", "-nopgm"]),
    ("non-numeric", GOOD + ["-distance", "far"], ["-distance", "'far'", "not a number"]),
    ("non-integer", GOOD + ["-detpixels", "1.5"], ["-detpixels", "not an integer"]),
    ("non-integer-seed", GOOD + ["-seed", "x"], ["-seed"]),
    ("nan", GOOD + ["-lambda", "nan"], ["-lambda", "nan"]),
    ("inf", GOOD + ["-distance", "inf"], ["-distance", "inf"]),
    ("nan-in-vector", GOOD + ["-beam_vector", "1", "nan", "0"], ["-beam_vector", "nan"]),
    ("bad-pivot", GOOD + ["-pivot", "detector"], ["-pivot"]),
    ("bad-dtype", GOOD + ["-dtype", "float16"], ["-dtype"]),
    ("bad-abs", GOOD + ["-detector_abs", "thick"], ["-detector_abs"]),
    # sizes and counts
    ("zero-pixel", GOOD + ["-pixel", "0"], ["-pixel", "positive"]),
    ("negative-pixel", GOOD + ["-pixel", "-0.1"], ["-pixel", "positive"]),
    ("zero-detpixels", GOOD + ["-detpixels", "0"], ["-detpixels", "positive"]),
    ("negative-detpixels-f", GOOD + ["-detpixels_f", "-3"], ["-detpixels_f", "positive"]),
    ("zero-detsize", GOOD + ["-detsize", "0"], ["-detsize", "positive"]),
    ("zero-distance", GOOD + ["-distance", "0"], ["-distance", "positive"]),
    ("negative-close-distance", GOOD + ["-close_distance", "-5"], ["-close_distance", "positive"]),
    ("zero-N", GOOD + ["-N", "0"], ["-N", "positive"]),
    ("negative-Na", GOOD + ["-Na", "-2"], ["-Na", "positive"]),
    ("zero-xtalsize", GOOD + ["-xtalsize", "0"], ["-xtalsize", "positive"]),
    ("negative-oversample", GOOD + ["-oversample", "-1"], ["-oversample", "negative"]),
    ("negative-mosaic", GOOD + ["-mosaic", "-0.5"], ["-mosaic", "negative"]),
    ("zero-mosaic-domains", GOOD + ["-mosaic", "1", "-mosaic_domains", "0"], ["-mosaic_domains", "positive"]),
    ("negative-phisteps", GOOD + ["-phisteps", "-2"], ["-phisteps", "negative"]),
    ("negative-thickness", GOOD + ["-detector_thick", "-10"], ["-detector_thick", "negative"]),
    ("negative-fluence", GOOD + ["-fluence", "-1e20"], ["-fluence", "negative"]),
    ("zero-beamsize", GOOD + ["-flux", "1e12", "-beamsize", "0"], ["-beamsize", "positive"]),
    ("negative-water", GOOD + ["-water", "-1"], ["-water", "negative"]),
    ("zero-vector", GOOD + ["-fdet_vector", "0", "0", "0"], ["-fdet_vector", "zero vector"]),
    ("runaway-oversample", GOOD + ["-oversample", "20000"], ["sub-paths", "-oversample"]),
    # wavelength
    ("zero-wavelength", GOOD + ["-lambda", "0"], ["-lambda", "positive"]),
    ("negative-wavelength", GOOD + ["-lambda", "-1"], ["-lambda", "positive"]),
    ("zero-energy", GOOD + ["-energy", "0"], ["-energy", "positive"]),
    # the cell
    ("no-cell", ["-default_F", "100", "-detpixels", "16"], ["cell"]),
    ("zero-cell-length", ["-cell", "0", "100", "100", "90", "90", "90", "-default_F", "1"], ["-cell", "positive"]),
    ("negative-cell-length", ["-cell", "100", "-100", "100", "90", "90", "90", "-default_F", "1"], ["-cell"]),
    ("flat-cell", ["-cell", "100", "100", "100", "0", "90", "90", "-default_F", "1"], ["-cell", "angle"]),
    ("straight-angle", ["-cell", "100", "100", "100", "180", "90", "90", "-default_F", "1"], ["-cell", "angle"]),
    ("impossible-angles", ["-cell", "100", "100", "100", "10", "10", "170", "-default_F", "1"], ["-cell", "impossible"]),
    ("angles-over-360", ["-cell", "100", "100", "100", "120", "120", "130", "-default_F", "1"], ["-cell", "impossible"]),
    ("no-cell-numbers", ["-cell", "-default_F", "1"], ["-cell"]),
    # the ROI
    ("reversed-roi-x", GOOD + ["-roi", "10", "5", "0", "10"], ["-roi"]),
    ("reversed-roi-y", GOOD + ["-roi", "0", "10", "8", "2"], ["-roi"]),
    ("negative-roi", GOOD + ["-roi", "-5", "10", "0", "10"], ["-roi"]),
    ("roi-off-detector", GOOD + ["-roi", "100", "200", "100", "200"], ["-roi", "off the detector"]),
    # (-printout_pixel / -trace_pixel off the detector: a warning, not an error; see below)
    # structure factors (none at all: see test_no_structure_factors_prints_the_usage_too)
    ("missing-hkl", CELL + ["-hkl", "absent.hkl"], ["absent.hkl", "not found"]),
    ("directory-hkl", CELL + ["-hkl", "adir"], ["adir", "directory"]),
    ("empty-hkl", CELL + ["-hkl", "empty.hkl"], ["empty.hkl"]),
    ("blank-hkl", CELL + ["-hkl", "blank.hkl"], ["blank.hkl"]),
    ("short-hkl", CELL + ["-hkl", "short.hkl"], ["short.hkl"]),
    ("garbled-hkl", CELL + ["-hkl", "words.hkl"], ["words.hkl"]),
    ("binary-hkl", CELL + ["-hkl", "binary.hkl"], ["binary.hkl"]),
    ("nan-hkl", CELL + ["-hkl", "nan.hkl"], ["nan.hkl", "not finite"]),
    ("inf-hkl", CELL + ["-hkl", "inf.hkl"], ["inf.hkl", "not finite"]),
    ("garbled-fdump", CELL + ["-dump", "Fdump.garbled"], ["Fdump.garbled"]),
    # the matrix
    ("missing-mat", ["-mat", "absent.mat", "-default_F", "1", "-detpixels", "16"], ["absent.mat", "not found"]),
    ("empty-mat", ["-mat", "empty.mat", "-default_F", "1", "-detpixels", "16"], ["empty.mat"]),
    ("short-mat", ["-mat", "short.mat", "-default_F", "1", "-detpixels", "16"], ["short.mat"]),
    ("garbled-mat", ["-mat", "words.mat", "-default_F", "1", "-detpixels", "16"], ["words.mat"]),
    ("singular-mat", ["-mat", "singular.mat", "-default_F", "1", "-detpixels", "16"], ["singular.mat"]),
    # SMV images (-img, -mask)
    ("missing-img", GOOD + ["-img", "absent.img"], ["absent.img", "not found"]),
    ("empty-img", GOOD + ["-img", "empty.img"], ["empty.img"]),
    ("short-mask", GOOD + ["-mask", "short.img"], ["short.img"]),
    ("not-smv-mask", GOOD + ["-mask", "notsmv.img"], ["notsmv.img"]),
    ("truncated-img", GOOD + ["-img", "truncated.img"], ["truncated.img", "truncated"]),
    ("bad-type-img", GOOD + ["-img", "badtype.img"], ["badtype.img", "TYPE"]),
    ("no-size-mask", GOOD + ["-mask", "nosize.img"], ["nosize.img"]),
    # source files
    ("missing-sources", GOOD + ["-sourcefile", "absent.txt"], ["absent.txt", "not found"]),
    ("empty-sources", GOOD + ["-sourcefile", "empty.txt"], ["empty.txt"]),
    ("comment-only-sources", GOOD + ["-sourcefile", "comments.txt"], ["comments.txt"]),
    ("zero-wavelength-source", GOOD + ["-sourcefile", "badlambda.txt"], ["badlambda.txt", "wavelength"]),
    # outputs
    ("output-folder-missing", GOOD + ["-floatfile", "nowhere/x.bin"], ["-floatfile", "does not exist"]),
    ("output-is-folder", GOOD + ["-intfile", "adir"], ["-intfile", "directory"]),
    ("noise-output-folder-missing", GOOD + ["-noisefile", "nowhere/n.img"], ["-noisefile"]),
    ("png-output-folder-missing", GOOD + ["-pngfile", "nowhere/p.png"], ["-pngfile"]),
    # -- issue 12 --------------------------------------------------------------------------
    # silent misreads: fewer than six -cell numbers, an upper-case RANDOM, atoi-read counts,
    # numbers Python's float() takes but C's atof does not, words and NaN in a source file
    ("cell-two-numbers", ["-cell", "100", "100", "-default_F", "1"], ["-cell", "6 numbers", "found 2"]),
    ("cell-five-numbers", ["-cell", "100", "100", "100", "90", "90", "-default_F", "1"], ["-cell", "found 5"]),
    ("misset-upper-case", GOOD + ["-misset", "RANDOM", "1", "2"], ["-misset", "'RANDOM'", "lower case"]),
    ("N-exponent", GOOD + ["-N", "1e6"], ["-N", "'1e6'", "not an integer"]),
    ("N-fraction", GOOD + ["-N", "0.5"], ["-N", "'0.5'", "not an integer"]),
    ("Na-exponent", GOOD + ["-Na", "1e3"], ["-Na", "not an integer"]),
    ("number-with-underscore", GOOD + ["-distance", "1_00"], ["-distance", "not a number"]),
    ("number-non-ascii", GOOD + ["-distance", "\u0661\u0660\u0660"], ["-distance", "not a number"]),
    ("hkl-underscore", CELL + ["-hkl", "underscore.hkl"], ["underscore.hkl", "line 2, column 1", "'1_0'"]),
    ("hkl-non-ascii-digit", CELL + ["-hkl", "arabic.hkl"], ["arabic.hkl", "line 2, column 1"]),
    ("mat-underscore", ["-mat", "underscore.mat", "-default_F", "1", "-detpixels", "16"],
     ["underscore.mat", "line 2, column 3", "'1_0'"]),
    ("sources-word-zero", GOOD + ["-sourcefile", "zero.txt"], ["zero.txt", "line 1, column 11", "'zero'"]),
    ("sources-explicit-nan", GOOD + ["-sourcefile", "nan.txt"], ["nan.txt", "line 1, column 9", "not finite"]),
    ("sources-garbage-suffix", GOOD + ["-sourcefile", "garbage-suffix.txt"], ["garbage-suffix.txt", "'-10x'"]),
    # non-finite images: values outside physical ranges, results beyond the dtype's range
    ("fluence-overflows-float32-file", GOOD + ["-fluence", "1e308"], ["float32", "-fluence"]),
    ("water-out-of-range", GOOD + ["-water", "1e30"], ["-water 1e30", "at most"]),
    ("default-F-overflow", GOOD + ["-default_F", "1e300"], ["float64", "-default_F"]),
    ("hkl-F-overflow", CELL + ["-hkl", "bigF.hkl"], ["float64", "-hkl"]),
    ("float32-fluence", GOOD + ["-dtype", "float32", "-fluence", "1e45"], ["-fluence", "float32", "-dtype float64"]),
    ("float32-image-overflow", GOOD + ["-dtype", "float32", "-default_F", "1e18", "-N", "100"],
     ["float32", "-dtype float64"]),
    ("dispersion-200", GOOD + ["-dispersion", "200"], ["-dispersion 200", "less than 100 percent"]),
    ("dispersion-300", GOOD + ["-dispersion", "300"], ["-dispersion 300"]),
    # outputs: checked before any work, named by their flag, no collisions
    ("output-trailing-slash", GOOD + ["-noisefile", "adir/"], ["-noisefile adir/", "folder"]),
    ("output-name-too-long", GOOD + ["-noisefile", "n" * 300 + ".img"], ["-noisefile", "file name", "bytes"]),
    ("outputs-collide", GOOD + ["-pgmfile", "floatimage.bin"], ["-pgmfile", "same file as -floatfile"]),
    ("outputs-collide-other-spelling", GOOD + ["-floatfile", "a.bin", "-intfile", "./a.bin"], ["-intfile", "-floatfile"]),
    ("output-overwrites-input", CELL + ["-hkl", "good.hkl", "-floatfile", "good.hkl"], ["-floatfile", "-hkl"]),
    ("output-is-the-dump", GOOD + ["-intfile", "Fdump.bin"], ["-intfile", "-dump"]),
    ("output-is-a-device", GOOD + ["-floatfile", os.devnull], ["-floatfile", "not a regular file"]),
    # raw exception text → messages about the input
    ("cell-1e308", ["-cell", "1e308", "100", "100", "90", "90", "90", "-default_F", "1"], ["-cell", "1e308"]),
    ("img-pixel-size-1e308", GOOD + ["-img", "bigpixel.img"], ["bigpixel.img", "PIXEL_SIZE=1e308", "-pixel"]),
    ("hkl-index-1e300", CELL + ["-hkl", "hugeindex.hkl"], ["hugeindex.hkl", "line 2, column 1"]),
    ("hkl-indices-100000", CELL + ["-hkl", "wide.hkl"], ["wide.hkl", "GiB"]),
    ("fdump-nan", CELL + ["-dump", "nan.fdump"], ["nan.fdump", "not finite"]),
    ("mask-smaller-than-detector", GOOD + ["-mask", "mask16.img", "-detpixels", "32"],
     ["-mask mask16.img", "16x16", "32x32"]),
    # one range table for flags and header values
    ("img-negative-distance", GOOD + ["-img", "negdist.img"], ["negdist.img", "DISTANCE=-100", "positive"]),
    ("img-nan-distance", GOOD + ["-img", "nandist.img"], ["nandist.img", "DISTANCE=nan", "not a number"]),
    ("detector-abs-negative", GOOD + ["-detector_abs", "-5"], ["-detector_abs -5", "negative"]),
    ("kahn-factor-out-of-range", GOOD + ["-polar", "2"], ["-polar 2", "Kahn"]),
    ("seed-beyond-c-int", GOOD + ["-seed", "99999999999"], ["-seed"]),
    ("stol-missing", GOOD + ["-stol", "absent.stol"], ["absent.stol", "not found"]),
    ("stol-garbled", GOOD + ["-stol", "words.hkl"], ["words.hkl", "line 1"]),
    ("detpixels-beyond-memory", GOOD + ["-detpixels", "100000"], ["-detpixels", "100000x100000", "GiB"]),
    # unknown flags suggest the nearest one
    ("unknown-flag-suggestion", GOOD + ["-lamda", "1"], ["-lamda", "did you mean -lambda?"]),
]


def _prepare(folder: Path) -> set[str]:
    for name, content in INPUTS.items():
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    (folder / "adir").mkdir()
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("case_id,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(tmp_path, case_id, argv, words):
    before = _prepare(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    finally:
        os.chdir(cwd)
    message = err.getvalue()
    assert rc == 2, (rc, message)
    assert message.startswith("nanoBragg: error: "), message
    assert message.endswith("\n") and message.count("\n") == 1, message
    assert "Traceback" not in message and "internal error" not in message, message
    for word in words:
        assert word in message, (word, message)
    assert out.getvalue() == "", "nothing is printed to stdout before the inputs are known good"
    assert {p.name for p in tmp_path.iterdir()} == before, "no output, temporary or cache file is left"


def test_failed_run_leaves_no_structure_factor_cache(tmp_path):
    """A -hkl run that fails after reading the file must not leave an Fdump.bin behind."""
    _prepare(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(CELL + ["-hkl", "good.hkl", "-floatfile", "nowhere/x.bin"]) == 2
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "Fdump.bin").exists()


def test_good_inputs_of_this_suite_do_render(tmp_path):
    """The prepared good files work, so the failures above are about the bad ones."""
    _prepare(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            assert main(CELL + ["-hkl", "good.hkl", "-nonoise", "-nopgm"]) == 0, err.getvalue()
            assert main(["-mat", "good.mat", "-default_F", "1", "-detpixels", "16", "-nonoise", "-nopgm",
                         "-floatfile", "m.bin", "-intfile", "m.img", "-noprogress"]) == 0
    finally:
        os.chdir(cwd)
    assert (tmp_path / "floatimage.bin").stat().st_size == 16 * 16 * 4
    assert (tmp_path / "m.bin").stat().st_size == 16 * 16 * 4


def test_subprocess_bad_file_has_no_traceback(tmp_path):
    _prepare(tmp_path)
    env = dict(os.environ, NANOBRAGG_JAX_CACHE="0")
    env.pop("NANOBRAGG_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "nanobragg_jax"] + CELL + ["-hkl", "binary.hkl"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("nanoBragg: error: binary.hkl") and proc.stderr.count("\n") == 1


def test_no_structure_factors_prints_the_usage_too(tmp_path):
    """As the C program does, the usage text goes to stdout; the error is still one stderr line."""
    before = _prepare(tmp_path)
    rc, out, err = _run_in(tmp_path, CELL)
    assert rc == 2
    assert err.startswith("nanoBragg: error: no structure factors") and err.count("\n") == 1, err
    assert out.startswith("Error: no structure factors") and "usage: nanoBragg" in out
    assert {p.name for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("flag,values,order", [("-printout_pixel", ["40", "3"], "f s"),
                                               ("-trace_pixel", ["3", "40"], "s f")])
def test_pixel_off_the_detector_is_a_warning(tmp_path, flag, values, order):
    """The C program prints nothing for a pixel it never renders and goes on; so do we, with a
    warning naming the flag."""
    _prepare(tmp_path)
    rc, out, err = _run_in(tmp_path, GOOD + ["-nonoise", "-nopgm", flag] + values)
    assert rc == 0, err
    assert err == f"nanoBragg: warning: {flag} {' '.join(values)}: ({order}) is outside the 16x16 detector; " \
                  "nothing is printed for it\n"
    assert "TRACE pixel" not in out and "Tracing pixel" not in out and "max_I = " in out
    assert (tmp_path / "floatimage.bin").exists()


def _run_in(folder: Path, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    finally:
        os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


def test_a_failed_late_write_leaves_no_output(tmp_path, monkeypatch):
    """All or nothing: the noise image (written last) fails → no output at all, flag named."""
    from nanobragg_jax.io import smv

    real = smv.write_smv
    calls = []

    def failing(path, data, header):
        calls.append(path)
        if len(calls) == 2:  # -intfile succeeds, -noisefile fails
            raise OSError(28, "No space left on device")
        real(path, data, header)

    monkeypatch.setattr(smv, "write_smv", failing)
    before = _prepare(tmp_path)
    rc, _, err = _run_in(tmp_path, GOOD + ["-seed", "1"])
    assert rc == 2
    assert err.startswith("nanoBragg: error: -noisefile noiseimage.img: cannot write") and err.count("\n") == 1, err
    assert "No space left" in err and ".part" not in err and ".tmp" not in err
    assert {p.name for p in tmp_path.iterdir()} == before


def test_hkl_comment_lines_are_skipped(tmp_path):
    """'#' and '!' lines are skipped (the C program stops reading at the first one)."""
    (tmp_path / "c.hkl").write_text("# h k l F\n0 0 0 10\n! more\n   # indented\n1 0 0 20\n")
    from nanobragg_jax.io import read_hkl

    data = read_hkl(tmp_path / "c.hkl")
    assert data.count == 2 and data.value(1, 0, 0) == 20.0


def test_reused_fdump_cache_is_announced(tmp_path):
    _prepare(tmp_path)
    quiet = ["-nonoise", "-nopgm"]
    rc, _, err = _run_in(tmp_path, CELL + ["-hkl", "good.hkl"] + quiet)
    assert rc == 0 and err == "", err
    assert (tmp_path / "Fdump.bin").exists()
    rc, _, err = _run_in(tmp_path, CELL + ["-default_F", "5"] + quiet)
    assert rc == 0
    assert err.startswith("nanoBragg: warning: using the structure factors cached in Fdump.bin"), err
    assert "-default_F" in err and err.count("\n") == 1


def test_well_formed_inputs_still_read_as_the_c_program_does(tmp_path):
    """The stricter readers accept what the C program reads in full, with the same values."""
    from nanobragg_jax.io import read_hkl, read_mosflm_matrix, read_source_file

    (tmp_path / "a.hkl").write_text("  1 -2 3.0 1.5e2 9 9\n+0 0 0 .5\n")
    data = read_hkl(tmp_path / "a.hkl")
    assert data.value(1, -2, 3) == 150.0 and data.value(0, 0, 0) == 0.5
    (tmp_path / "m.mat").write_text("1e-2 0 0\n0 +.01 0\n0 0 0.01 extra words after nine\n")
    assert read_mosflm_matrix(tmp_path / "m.mat")[1, 1] == 0.01
    (tmp_path / "s.txt").write_text("0,0;-10 1:1e-10\n\n0 0 -10\n")
    rows = read_source_file(tmp_path / "s.txt")
    assert rows[0].tolist() == [0.0, 0.0, -10.0, 1.0, 1e-10]
    assert rows[1, :3].tolist() == [0.0, 0.0, -10.0] and all(v != v for v in rows[1, 3:])  # missing → NaN


def test_one_range_table_serves_flags_and_headers():
    from nanobragg_jax.ranges import FLAG_QUANTITY, HEADER_QUANTITY, RANGES

    for key, (quantity, flag) in HEADER_QUANTITY.items():
        assert FLAG_QUANTITY[flag] == quantity, key
    assert set(FLAG_QUANTITY.values()) <= set(RANGES)
