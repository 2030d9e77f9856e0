"""Property-based fuzzing of the flag parser and every file reader (hypothesis).

Properties:

* random *valid* input round-trips: numbers written into a command line, an HKL file, an
  Fdump file, a MOSFLM matrix, an SMV image or a source file come back as the same values;
* random *corrupt* input (one field replaced by garbage, bytes flipped, files cut short) gives
  exactly one clean error — ``FlagError`` / ``InputFileError`` with a one-line message naming the
  flag or the file — never another exception, a NaN, or a silent default;
* through the command itself (a few runs only): exit status 2, one stderr line starting
  ``nanoBragg: error:``, nothing on stdout, no file written.

The example budget is fixed and derandomised (same examples every run), and nothing here
renders an image except the last CLI property (a 4×4 detector, a handful of examples).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nanobragg_jax.flags import FLAGS, FlagError, validate_argv  # noqa: E402
from nanobragg_jax.io import (  # noqa: E402
    HKLData,
    InputFileError,
    read_fdump,
    read_hkl,
    read_mosflm_matrix,
    read_smv,
    read_source_file,
    write_fdump,
    write_smv,
)

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

BASE = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100"]

# text that is not a number as C's atof reads it in full (each has fooled a float() parser)
GARBAGE = st.sampled_from(["", "x", "zero", "nan", "inf", "-inf", "1_0", "\u0661", "1e", "--1", "1.2.3",
                           "0x10", "1,5", "+", ".", "e5", "1e999", "١٢", "1.5abc", "NaN", "Infinity",
                           "\x00", "💥", "None", "1 2"])


def _finite_floats(lo: float = -1e6, hi: float = 1e6):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


def _repr(x: float) -> str:
    return repr(float(x))


def _one_line(exc: BaseException, *needles: str) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)


# --- the flag parser -----------------------------------------------------------------------------

NUM_FLAGS = [(spec, name) for spec in FLAGS for name in spec.names if spec.kind == "num" and spec.nargs == 1]
INT_FLAGS = [(spec, name) for spec in FLAGS for name in spec.names if spec.kind == "int" and spec.nargs == 1]


@FUZZ
@given(flag=st.sampled_from(NUM_FLAGS + INT_FLAGS), bad=GARBAGE)
def test_flag_with_a_garbage_value_is_one_clean_error(flag, bad):
    spec, name = flag
    with pytest.raises(FlagError) as err:
        validate_argv(BASE + [name, bad])
    _one_line(err.value, name)


@FUZZ
@given(flag=st.sampled_from(NUM_FLAGS + INT_FLAGS), x=st.one_of(_finite_floats(-1e12, 1e12),
                                                                 st.integers(-10**12, 10**12)))
def test_flag_numbers_are_accepted_or_refused_by_range_cleanly(flag, x):
    """Every decimal number is either accepted, or refused with a one-line FlagError naming the flag."""
    spec, name = flag
    text = str(int(x)) if spec.kind == "int" else _repr(x)
    try:
        validate_argv(BASE + [name, text])
    except FlagError as exc:
        _one_line(exc, name)


@FUZZ
@given(words=st.lists(st.one_of(st.sampled_from(sorted({n for s in FLAGS for n in s.names})), GARBAGE,
                                st.text(max_size=6), _finite_floats().map(_repr)), max_size=8))
def test_random_command_lines_parse_or_fail_with_one_line(words):
    try:
        validate_argv(BASE + words)
    except FlagError as exc:
        _one_line(exc)


@FUZZ
@given(cell=st.tuples(*[_finite_floats(1.0, 1000.0)] * 3, *[_finite_floats(60.0, 120.0)] * 3))
def test_cell_values_round_trip(tmp_path_factory, cell):
    import nanobragg_jax as nb

    folder = tmp_path_factory.mktemp("cell")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        args = ["-cell", *map(_repr, cell), "-default_F", "1", "-detpixels", "4"]
        try:
            exp = nb.from_cli_args(args)
        except FlagError as exc:  # angles that close no parallelepiped
            _one_line(exc, "-cell")
            return
        np.testing.assert_allclose(np.asarray(exp.params.cell), cell, rtol=1e-12)
    finally:
        os.chdir(cwd)


# --- HKL text files ------------------------------------------------------------------------------

HKL_ROWS = st.lists(st.tuples(st.integers(-6, 6), st.integers(-6, 6), st.integers(-6, 6),
                              _finite_floats(0.0, 1e4)), min_size=1, max_size=20)


@FUZZ
@given(rows=HKL_ROWS, comments=st.booleans())
def test_hkl_round_trip(rows, comments):
    lines = [f"{h} {k} {l} {_repr(F)}" for h, k, l, F in rows]
    if comments:
        lines = ["# h k l F", *lines[:1], "! a comment", *lines[1:]]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.hkl"
        path.write_text("\n".join(lines) + "\n")
        data = read_hkl(path)
    last = {}
    for h, k, l, F in rows:
        last[(h, k, l)] = F
    assert data.count == len(rows)
    for (h, k, l), F in last.items():
        assert data.value(h, k, l) == F


@FUZZ
@given(rows=HKL_ROWS, line=st.integers(0, 19), col=st.integers(0, 3), bad=GARBAGE)
def test_hkl_with_a_garbage_field_is_one_clean_error(rows, line, col, bad):
    fields = [[str(h), str(k), str(l), _repr(F)] for h, k, l, F in rows]
    line %= len(fields)
    bad = "".join("_" if c.isspace() else c for c in bad)  # one field, not several
    if bad == "" or bad.startswith(("#", "!")):
        bad = "x" + bad
    fields[line][col] = bad
    text = "\n".join(" ".join(f) for f in fields) + "\n"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.hkl"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputFileError) as err:
            read_hkl(path)
    _one_line(err.value, str(path), f"line {line + 1}")


# --- Fdump ---------------------------------------------------------------------------------------

@FUZZ
@given(mins=st.tuples(*[st.integers(-4, 0)] * 3), spans=st.tuples(*[st.integers(0, 4)] * 3),
       seed=st.integers(0, 2**32 - 1))
def test_fdump_round_trip(mins, spans, seed):
    maxs = tuple(a + s for a, s in zip(mins, spans))
    shape = tuple(s + 2 for s in spans)
    grid = np.random.default_rng(seed).uniform(0, 1e3, shape)
    hkl = HKLData(grid, *mins, *maxs, count=int(np.prod([s + 1 for s in spans])))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "Fdump.bin"
        write_fdump(path, hkl)
        back = read_fdump(path)
    assert back.mins == mins and back.maxs == maxs
    np.testing.assert_array_equal(back.grid, grid)


@FUZZ
@given(cut=st.integers(0, 200), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4))
def test_corrupt_fdump_is_one_clean_error_or_finite(cut, flips):
    hkl = HKLData(np.ones((3, 3, 3)), 0, 0, 0, 1, 1, 1, count=8)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "Fdump.bin"
        write_fdump(path, hkl)
        raw = bytearray(path.read_bytes())
        for pos, value in flips:
            raw[pos % len(raw)] = value
        raw = raw[: len(raw) - cut]
        path.write_bytes(bytes(raw))
        try:
            data = read_fdump(path)
        except InputFileError as exc:
            _one_line(exc, str(path))
            return
    assert np.all(np.isfinite(data.grid))


# --- MOSFLM matrix -------------------------------------------------------------------------------

@FUZZ
@given(m=st.lists(_finite_floats(-1.0, 1.0), min_size=9, max_size=9), tail=st.text(max_size=30))
def test_matrix_round_trip(m, tail):
    text = "\n".join(" ".join(_repr(x) for x in m[r * 3:r * 3 + 3]) for r in range(3)) + "\n" + tail
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.mat"
        path.write_text(text, encoding="utf-8")
        got = read_mosflm_matrix(path)
    np.testing.assert_array_equal(got, np.asarray(m).reshape(3, 3))


@FUZZ
@given(m=st.lists(_finite_floats(-1.0, 1.0), min_size=9, max_size=9), k=st.integers(0, 8), bad=GARBAGE)
def test_matrix_with_a_garbage_element_is_one_clean_error(m, k, bad):
    tokens = [_repr(x) for x in m]
    tokens[k] = bad if bad.strip() and " " not in bad else "x"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.mat"
        path.write_text(" ".join(tokens) + "\n", encoding="utf-8")
        with pytest.raises(InputFileError) as err:
            read_mosflm_matrix(path)
    _one_line(err.value, str(path))


# --- SMV images ----------------------------------------------------------------------------------

@FUZZ
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       pixel=_finite_floats(0.01, 1.0), distance=_finite_floats(1.0, 1000.0))
def test_smv_round_trip(h, w, seed, pixel, distance):
    data = np.random.default_rng(seed).integers(0, 65536, (h, w)).astype(np.uint16)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.img"
        write_smv(path, data, [("PIXEL_SIZE", _repr(pixel)), ("DISTANCE", _repr(distance))])
        img = read_smv(path)
    np.testing.assert_array_equal(img.data, data)
    assert float(img.header["PIXEL_SIZE"]) == pixel and float(img.header["DISTANCE"]) == distance


@FUZZ
@given(cut=st.integers(0, 600), flips=st.lists(st.tuples(st.integers(0, 599), st.integers(0, 255)), max_size=6))
def test_corrupt_smv_is_one_clean_error(cut, flips):
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.img"
        write_smv(path, data, [("PIXEL_SIZE", "0.1")])
        raw = bytearray(path.read_bytes())
        for pos, value in flips:
            raw[pos % len(raw)] = value
        raw = raw[: max(0, len(raw) - cut)]
        path.write_bytes(bytes(raw))
        try:
            img = read_smv(path)
        except InputFileError as exc:
            _one_line(exc, str(path))
            return
    assert img.data.dtype == np.uint16 and img.data.ndim == 2


@FUZZ
@given(key=st.sampled_from(["PIXEL_SIZE", "DISTANCE", "CLOSE_DISTANCE", "WAVELENGTH", "BEAM_CENTER_X",
                            "BEAM_CENTER_Y", "PHI", "OSC_RANGE"]),
       value=st.one_of(GARBAGE.filter(lambda s: ";" not in s and "\n" not in s and "\x00" not in s
                                      and "}" not in s and "{" not in s and "=" not in s
                                      and s.isascii()),
                       _finite_floats(-1e300, 1e300).map(_repr)))
def test_header_values_are_range_checked_like_flags(tmp_path_factory, key, value):
    """-img header values: accepted, or one InputFileError naming the file and the key."""
    import nanobragg_jax as nb

    folder = tmp_path_factory.mktemp("hdr")
    write_smv(folder / "h.img", np.zeros((4, 4), np.uint16), [("PIXEL_SIZE", "0.1"), (key, value)])
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        nb.from_cli_args(BASE + ["-img", "h.img"])
    except InputFileError as exc:
        _one_line(exc, "h.img", key.split("_")[-1])
    except FlagError as exc:  # a valid header value that makes an impossible geometry
        _one_line(exc)
    finally:
        os.chdir(cwd)


# --- source files --------------------------------------------------------------------------------

SOURCE_ROWS = st.lists(st.lists(_finite_floats(-100.0, 100.0), min_size=1, max_size=5), min_size=1, max_size=8)


@FUZZ
@given(rows=SOURCE_ROWS, sep=st.sampled_from([" ", "\t", ",", ";", ":", " , "]))
def test_source_file_round_trip(rows, sep):
    text = "".join(sep.join(_repr(x) for x in row) + "\n" for row in rows)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.txt"
        path.write_text(text)
        got = read_source_file(path)
    assert got.shape == (len(rows), 5)
    for row, back in zip(rows, got):
        assert back[: len(row)].tolist() == row
        assert all(math.isnan(v) for v in back[len(row):])


@FUZZ
@given(rows=SOURCE_ROWS, r=st.integers(0, 7), c=st.integers(0, 4), bad=GARBAGE)
def test_source_file_with_a_garbage_field_is_one_clean_error(rows, r, c, bad):
    cells = [[_repr(x) for x in row] for row in rows]
    r %= len(cells)
    c %= len(cells[r])
    # one field: the reader splits on white space and on , ; : !
    bad = "".join("_" if c.isspace() or c in ",;:!" else c for c in bad) or "x"
    cells[r][c] = bad
    text = "".join(" ".join(row) + "\n" for row in cells)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.txt"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputFileError) as err:
            read_source_file(path)
    _one_line(err.value, str(path), f"line {r + 1}")


# --- through the command (few examples: each run parses and checks, none renders) ---------------

CLI_FUZZ = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@CLI_FUZZ
@given(flag=st.sampled_from(NUM_FLAGS + INT_FLAGS), bad=GARBAGE,
       which=st.sampled_from(["flag", "hkl", "sources", "mat"]))
def test_cli_corrupt_input_is_one_line_exit_2_and_no_file(tmp_path_factory, flag, bad, which):
    from nanobragg_jax.cli import main

    folder = tmp_path_factory.mktemp("cli")
    quiet = ["-detpixels", "4", "-noprogress"]
    token = "".join("_" if c.isspace() or c in ",;:!" else c for c in bad) or "x"
    if which == "flag":
        argv = BASE + quiet + [flag[1], bad]
    elif which == "hkl":
        (folder / "x.hkl").write_text(f"0 0 0 10\n1 {token} 0 5\n", encoding="utf-8")
        argv = BASE[:7] + ["-hkl", "x.hkl"] + quiet
    elif which == "sources":
        (folder / "x.txt").write_text(f"0 0 -10 1 {token}\n", encoding="utf-8")
        argv = BASE + quiet + ["-sourcefile", "x.txt"]
    else:
        (folder / "x.mat").write_text(f"0.01 0 0 0 0.01 0 0 0 {token}\n", encoding="utf-8")
        argv = ["-mat", "x.mat", "-default_F", "1"] + quiet
    before = {p.name for p in folder.iterdir()}
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    finally:
        os.chdir(cwd)
    message = err.getvalue()
    assert rc == 2, (argv, message)
    assert message.startswith("nanoBragg: error: ") and message.count("\n") == 1, message
    assert out.getvalue() == ""
    assert {p.name for p in folder.iterdir()} == before


def test_fuzz_strategies_cover_both_number_kinds():
    assert NUM_FLAGS and INT_FLAGS
    assert struct.calcsize("d") == 8
