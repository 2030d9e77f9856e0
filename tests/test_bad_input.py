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
    ("printout-pixel-off-detector", GOOD + ["-printout_pixel", "40", "3"], ["-printout_pixel", "outside"]),
    ("trace-pixel-off-detector", GOOD + ["-trace_pixel", "3", "40"], ["-trace_pixel", "outside"]),
    # structure factors
    ("no-structure-factors", CELL, ["structure factors"]),
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
