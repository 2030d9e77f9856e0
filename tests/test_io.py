"""File formats: HKL/Fdump, SMV, MOSFLM matrix, source lists, PGM/PNG."""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import golden

from nanobragg_jax.io import (
    HKLData,
    InputFileError,
    c_value_of,
    header_value,
    read_fdump,
    read_hkl,
    read_mosflm_matrix,
    read_smv,
    read_source_file,
    write_fdump,
    write_pgm,
    write_png,
    write_smv,
)
from nanobragg_jax.io.pgm import pgm_bytes, pgm_pixels
from nanobragg_jax.io.smv import c_atof, format_smv_header, parse_smv_header


def golden_inputs() -> Path:
    golden.require()  # the corpus ships in tests/golden/: missing means a broken checkout
    return golden.golden_dir() / "inputs"


def write_text(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("latin-1"))
    return path


def assert_names_file(exc: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(exc.value)
    assert str(path) in msg
    assert "\n" not in msg
    assert isinstance(exc.value, ValueError)
    assert exc.value.path == str(path)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- HKL ----------------------------------------------------------------------------------


def test_read_hkl_golden_p1_random() -> None:
    hkl = read_hkl(golden_inputs() / "P1_random.hkl")
    assert (hkl.h_min, hkl.k_min, hkl.l_min, hkl.h_max, hkl.k_max, hkl.l_max) == (
        -8, -8, -8, 8, 8, 8,
    )  # fmt: skip
    assert hkl.count == 17**3
    assert hkl.grid.shape == (18, 18, 18) and hkl.grid.dtype == np.float64
    assert hkl.value(-8, -8, -8) == pytest.approx(95.4301)
    assert hkl.value(-8, -8, -7) == pytest.approx(113.91)
    # the C's padding layer is zero
    assert not hkl.grid[-1].any() and not hkl.grid[:, -1].any() and not hkl.grid[:, :, -1].any()


def test_read_hkl_default_fill_only_inner_block() -> None:
    hkl = read_hkl(golden_inputs() / "sparse.hkl", default_F=7.0)
    assert hkl.grid.shape == (4, 4, 2)
    assert hkl.count == 3
    inner = hkl.grid[:3, :3, :1]
    assert inner[0, 0, 0] == 100.0 and inner[2, 0, 0] == 80.0 and inner[0, 2, 0] == 60.0
    assert inner[1, 1, 0] == 7.0
    assert not hkl.grid[3].any() and not hkl.grid[:, 3].any() and not hkl.grid[:, :, 1].any()


def test_read_hkl_extra_columns_ignored() -> None:
    six = read_hkl(golden_inputs() / "with_sigma_phase.hkl")
    p1 = read_hkl(golden_inputs() / "P1_random.hkl")
    for line in (golden_inputs() / "with_sigma_phase.hkl").read_text().splitlines()[:50]:
        h, k, l, f = line.split()[:4]
        assert six.value(int(h), int(k), int(l)) == float(f) == p1.value(int(h), int(k), int(l))


def test_read_hkl_repeats_last_wins_blank_lines_and_integral_floats(tmp_path: Path) -> None:
    p = write_text(tmp_path / "r.hkl", "\n 1 0 0 10\n\n 1 0 0 20 5.0\n-1 2.0 0 3e1\n   \n")
    hkl = read_hkl(p)
    assert hkl.count == 3  # the C counts every line read, repeats included
    assert hkl.value(1, 0, 0) == 20.0
    assert hkl.value(-1, 2, 0) == 30.0
    assert hkl.ranges == (3, 3, 1)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("", "no reflections"),
        ("\n  \n", "no reflections"),
        ("1 2 3\n", "field"),
        ("1 2 3.5 10\n", "integer"),
        ("1 x 3 10\n", "integer"),
        ("1 2 3 ten\n", "not a number"),
        ("1 2 3 4\n\x00\x01\x02 garbage\n", "field"),
    ],
)
def test_read_hkl_bad_files(tmp_path: Path, content: str, reason: str) -> None:
    p = write_text(tmp_path / "bad.hkl", content)
    with pytest.raises(InputFileError, match=reason) as exc:
        read_hkl(p)
    assert_names_file(exc, p)


def test_read_hkl_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found") as exc:
        read_hkl(tmp_path / "nope.hkl")
    assert_names_file(exc, tmp_path / "nope.hkl")
    with pytest.raises(InputFileError, match="directory"):
        read_hkl(tmp_path)


def test_fdump_layout_matches_c_writer(tmp_path: Path) -> None:
    # sparse.hkl with -default_F 7: the C program writes exactly these 269 bytes
    hkl = read_hkl(golden_inputs() / "sparse.hkl", default_F=7.0)
    out = tmp_path / "Fdump.bin"
    write_fdump(out, hkl)
    raw = out.read_bytes()
    header = b"0 2 0 2 0 0\n\f"
    assert raw.startswith(header)
    assert len(raw) == len(header) + 8 * 4 * 4 * 2 == 269
    values = np.frombuffer(raw[len(header) :], dtype=np.float64).reshape(4, 4, 2)
    np.testing.assert_array_equal(values, hkl.grid)
    assert values[0, 0, 0] == 100.0 and values[0, 0, 1] == 0.0 and values[1, 1, 0] == 7.0
    assert no_temp_files(tmp_path)


def test_fdump_round_trip(tmp_path: Path) -> None:
    hkl = read_hkl(golden_inputs() / "P1_random.hkl", default_F=3.0)
    write_fdump(tmp_path / "F.bin", hkl)
    back = read_fdump(tmp_path / "F.bin")
    np.testing.assert_array_equal(back.grid, hkl.grid)
    assert back.mins == hkl.mins and back.maxs == hkl.maxs
    assert back.count == 17**3  # the C sets hkls = h_range*k_range*l_range after a dump


def test_fdump_first_double_starting_with_whitespace_byte(tmp_path: Path) -> None:
    # a value whose first (little-endian) byte is a space: the C reader would swallow it
    value = np.frombuffer(b"\x20" + b"\x00" * 5 + b"\x59\x40", dtype="<f8")[0]
    grid = np.zeros((2, 2, 2))
    grid[0, 0, 0] = value
    hkl = HKLData(grid=grid, h_min=0, k_min=0, l_min=0, h_max=0, k_max=0, l_max=0, count=1)
    write_fdump(tmp_path / "F.bin", hkl)
    assert read_fdump(tmp_path / "F.bin").grid[0, 0, 0] == value


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "header"),
        (b"1 2 3\n\f" + b"\0" * 64, "six integers"),
        (b"0 0 0 0 0 0\n" + b"\0" * 64, "form feed"),
        (b"0 1 0 1 0 1\n\f" + b"\0" * 16, "truncated"),
        (b"2 1 0 1 0 1\n\f" + b"\0" * 512, "empty"),
    ],
)
def test_read_fdump_bad_files(tmp_path: Path, payload: bytes, reason: str) -> None:
    p = tmp_path / "Fdump.bin"
    p.write_bytes(payload)
    with pytest.raises(InputFileError, match=reason) as exc:
        read_fdump(p)
    assert_names_file(exc, p)


def test_write_fdump_rejects_unpadded_grid(tmp_path: Path) -> None:
    hkl = HKLData(grid=np.zeros((1, 1, 1)), h_min=0, k_min=0, l_min=0, h_max=0, k_max=0,
                  l_max=0, count=1)  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        write_fdump(tmp_path / "F.bin", hkl)


# --- SMV ----------------------------------------------------------------------------------


def test_read_smv_golden_inputs() -> None:
    img = read_smv(golden_inputs() / "header96x128.img")
    assert img.data.shape == (96, 128) and img.data.dtype == np.uint16
    assert img.header_bytes == 512
    assert header_value(img.header, "PIXEL_SIZE") == 0.15
    assert header_value(img.header, "DISTANCE") == 120.0
    assert header_value(img.header, "BEAM_CENTER_Y") == 6.0
    assert header_value(img.header, "CLOSE_DISTANCE") is None
    assert np.isnan(c_value_of(img.header_text, "CLOSE_DISTANCE"))
    mask = read_smv(golden_inputs() / "mask128.img")
    assert mask.data.shape == (128, 128)
    assert set(np.unique(mask.data)) <= {0, 1} and mask.data.any() and not mask.data.all()


def test_smv_round_trip_and_fabio(tmp_path: Path) -> None:
    fabio = pytest.importorskip("fabio")
    rs = np.random.default_rng(0)
    data = rs.integers(0, 65536, size=(37, 53), dtype=np.uint16)
    items = [("PIXEL_SIZE", "0.1"), ("DISTANCE", "100"), ("WAVELENGTH", "1"),
             ("DIALS_ORIGIN", "-4.9,4.9,-100"), ("SIZE1", "999")]  # fmt: skip
    out = tmp_path / "image.img"
    write_smv(out, data, items)
    raw = out.read_bytes()
    assert len(raw) == 512 + data.size * 2
    assert raw.startswith(b"{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=")
    head = raw[:512]
    assert head.rstrip(b" ").endswith(b"}\f")
    assert b"DIALS_ORIGIN=-4.9,4.9,-100;\n" in head
    assert b"SIZE1=53;\nSIZE2=37;\n" in head and b"999" not in head
    back = read_smv(out)
    np.testing.assert_array_equal(back.data, data)
    assert back.header["DISTANCE"] == "100"
    f = fabio.open(str(out))
    assert f.data.shape == (37, 53)
    np.testing.assert_array_equal(np.asarray(f.data), data)
    assert no_temp_files(tmp_path)


def test_smv_long_header_grows_in_512_blocks(tmp_path: Path) -> None:
    items = [(f"KEY_{i:03d}", "x" * 20) for i in range(40)]
    data = np.arange(12, dtype=np.uint16).reshape(3, 4)
    write_smv(tmp_path / "long.img", data, items)
    back = read_smv(tmp_path / "long.img")
    assert back.header_bytes % 512 == 0 and back.header_bytes > 512
    assert back.header["HEADER_BYTES"] == str(back.header_bytes)
    assert back.header["KEY_039"] == "x" * 20
    np.testing.assert_array_equal(back.data, data)


def test_smv_big_endian_is_swapped_and_last_key_wins(tmp_path: Path) -> None:
    data = np.array([[1, 2, 3], [256, 65535, 4660]], dtype=np.uint16)
    head = format_smv_header(
        [("HEADER_BYTES", "512"), ("DIM", "2"), ("BYTE_ORDER", "big_endian"),
         ("TYPE", "unsigned_short"), ("SIZE1", "3"), ("SIZE2", "2"),
         ("DISTANCE", "100"), ("CLOSE_DISTANCE", "90"), ("DISTANCE", "150")]  # fmt: skip
    )
    p = tmp_path / "be.img"
    p.write_bytes(head + data.astype(">u2").tobytes())
    img = read_smv(p)
    np.testing.assert_array_equal(img.data, data)
    assert img.data.dtype == np.dtype(np.uint16)
    assert header_value(img.header, "DISTANCE") == 150.0
    assert c_value_of(img.header_text, "DISTANCE") == 150.0
    assert c_value_of(img.header_text, "CLOSE_DISTANCE") == 90.0


def test_c_value_of_substring_quirk() -> None:
    text = "{\nHEADER_BYTES=512;\nDISTANCE=100;\nXDS_ORGX=65.5;\nCLOSE_DISTANCE=90;\n}\f"
    header = parse_smv_header(text)
    assert header_value(header, "DISTANCE") == 100.0
    assert c_value_of(text, "DISTANCE") == 90.0  # C's ValueOf finds CLOSE_DISTANCE last
    assert c_value_of(text, "ORGX") == 65.5
    assert header_value(header, "ORGX") is None


def test_c_atof() -> None:
    assert c_atof(" 12.5mm") == 12.5
    assert c_atof("-1e-3,") == -1e-3
    assert c_atof("little_endian") == 0.0
    assert c_atof("") == 0.0
    assert np.isnan(c_atof("nan"))
    assert c_atof("0x10") == 16.0


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "too short"),
        (b"P5\n" + b" " * 600, "ADSC"),
        (format_smv_header([("HEADER_BYTES", "512"), ("SIZE1", "4"), ("SIZE2", "4")])
         + b"\0" * 10, "truncated"),
        (format_smv_header([("HEADER_BYTES", "512"), ("SIZE1", "0"), ("SIZE2", "4")]), "size"),
        (format_smv_header([("HEADER_BYTES", "512"), ("TYPE", "float"), ("SIZE1", "1"),
                            ("SIZE2", "1")]) + b"\0" * 4, "TYPE"),
        (format_smv_header([("HEADER_BYTES", "4096"), ("SIZE1", "1"), ("SIZE2", "1")]),
         "header"),
    ],
)  # fmt: skip
def test_read_smv_bad_files(tmp_path: Path, payload: bytes, reason: str) -> None:
    p = tmp_path / "bad.img"
    p.write_bytes(payload)
    with pytest.raises(InputFileError, match=reason) as exc:
        read_smv(p)
    assert_names_file(exc, p)


def test_read_smv_missing(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found") as exc:
        read_smv(tmp_path / "none.img")
    assert_names_file(exc, tmp_path / "none.img")


def test_write_smv_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint16"):
        write_smv(tmp_path / "x.img", np.zeros((2, 2), dtype=np.float32), [])
    with pytest.raises(ValueError, match="invalid"):
        write_smv(tmp_path / "x.img", np.zeros((2, 2), dtype=np.uint16), [("A;B", "1")])
    assert not (tmp_path / "x.img").exists()


# --- MOSFLM matrix ------------------------------------------------------------------------


def test_read_mosflm_matrix_golden() -> None:
    m = read_mosflm_matrix(golden_inputs() / "triclinic.mat")
    assert m.shape == (3, 3)
    # rows are x, y, z components; columns a*, b*, c*
    np.testing.assert_array_equal(m[0], [0.0028248929, -0.0123214486, 0.0014323302])
    np.testing.assert_array_equal(m[:, 0], [0.0028248929, 0.0112452396, 0.0085974921])


def test_read_mosflm_matrix_any_whitespace(tmp_path: Path) -> None:
    p = write_text(tmp_path / "a.mat", "1 2\n3 4 5 6\n\n7\t8 9 10 11\n")
    np.testing.assert_array_equal(read_mosflm_matrix(p), np.arange(1, 10).reshape(3, 3))


def test_read_mosflm_matrix_comment_lines(tmp_path: Path) -> None:
    p = write_text(tmp_path / "c.mat", "# A matrix\n 1 2 3\n\n! x\n4 5 6\n  # indented\n7 8 9\n")
    np.testing.assert_array_equal(read_mosflm_matrix(p), np.arange(1, 10).reshape(3, 3))
    # a comment does not hide a bad element, and the position still names the file's line
    p = write_text(tmp_path / "d.mat", "# A matrix\n1 2 3\n4 x 6\n7 8 9\n")
    with pytest.raises(InputFileError, match="line 3, column 3: matrix element 5"):
        read_mosflm_matrix(p)


@pytest.mark.parametrize("content, reason", [("", "9 numbers"), ("1 2 3\n4 5 6\n", "9 numbers"),
                                             ("1 2 3\n4 x 6\n7 8 9\n", "element 5")])  # fmt: skip
def test_read_mosflm_matrix_bad(tmp_path: Path, content: str, reason: str) -> None:
    p = write_text(tmp_path / "bad.mat", content)
    with pytest.raises(InputFileError, match=reason) as exc:
        read_mosflm_matrix(p)
    assert_names_file(exc, p)


# --- source files -------------------------------------------------------------------------


def test_read_source_file_golden() -> None:
    src = read_source_file(golden_inputs() / "sources_lambda.txt")
    assert src.shape == (4, 5)
    np.testing.assert_array_equal(src[0], [-10.0, 0.0, 0.0, 1.0, 6.0e-10])
    assert np.isnan(src[2, 4]) and not np.isnan(src[2, 3])
    assert np.isnan(src[3, 3:]).all()
    plain = read_source_file(golden_inputs() / "sources.txt")
    assert plain.shape[1] == 5 and not np.isnan(plain[:, :3]).any()


def test_read_source_file_c_tokeniser(tmp_path: Path) -> None:
    text = "  -10.0  0.0 0.0 1.0 6.2e-10\n\n \t \n1,,2;3:4!5 6 7\nabc 2\n1e-3 -2.5E+2 nan x7 .5\n"
    p = write_text(tmp_path / "s.txt", text)
    with pytest.raises(InputFileError, match="line 5, column 1: field 1 is not a number: 'abc'"):
        read_source_file(p)  # strict by default: the C program would read 'abc' as 0
    src = read_source_file(p, strict=False)
    expected = [
        [-10.0, 0.0, 0.0, 1.0, 6.2e-10],
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [0.0, 2.0, np.nan, np.nan, np.nan],
        [1e-3, -250.0, np.nan, 0.0, 0.5],
    ]
    np.testing.assert_array_equal(src, np.array(expected))


def test_read_source_file_line_end_quirk(tmp_path: Path) -> None:
    p = write_text(tmp_path / "s.txt", "-10 0.002\r\n1 2 3")
    sane = read_source_file(p)
    assert np.isnan(sane[0, 2:]).all() and np.isnan(sane[1, 3:]).all()
    c_like = read_source_file(p, c_line_end_quirk=True)
    np.testing.assert_array_equal(c_like, [[-10, 0.002, 0, 0, 0], [1, 2, 3, 0, 0]])


@pytest.mark.parametrize("content", ["", "\n \t\n,,,\n"])
def test_read_source_file_no_data(tmp_path: Path, content: str) -> None:
    p = write_text(tmp_path / "empty.txt", content)
    with pytest.raises(InputFileError, match="no data") as exc:
        read_source_file(p)
    assert_names_file(exc, p)


def test_read_source_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        read_source_file(tmp_path / "gone.txt")


# --- PGM / PNG ----------------------------------------------------------------------------


def test_pgm_like_c(tmp_path: Path) -> None:
    img = np.array([[0.0, 1.0, 2.9, 100.0], [-1.0, 0.5, np.nan, 3.0]], dtype=np.float32)
    out = tmp_path / "p.pgm"
    write_pgm(out, img, 2.0, roi=(0, 2, 0, 1))
    raw = out.read_bytes()
    header = b"P5\n4 2\n# pixels scaled by 2\n255\n"
    assert raw.startswith(header)
    pixels = np.frombuffer(raw[len(header) :], dtype=np.uint8).reshape(2, 4)
    # v*scale truncated, clipped at 255, negative wraps (-2 -> 254), NaN -> 0, outside ROI 0
    np.testing.assert_array_equal(pixels, [[0, 2, 5, 0], [254, 1, 0, 0]])
    assert no_temp_files(tmp_path)


def test_pgm_scale_comment_uses_percent_g() -> None:
    img = np.zeros((1, 1), dtype=np.float32)
    assert b"# pixels scaled by 123.457\n" in pgm_bytes(img, 123.456789)
    assert b"# pixels scaled by 1e-07\n" in pgm_bytes(img, 1e-7)
    assert pgm_pixels(np.full((1, 1), 1e6, np.float32), 1.0)[0, 0] == 255


def _decode_png(raw: bytes) -> np.ndarray:
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind = raw[pos + 4 : pos + 8]
        body = raw[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", raw[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, ctype = ihdr[:4]
    assert (depth, ctype) == (8, 0)
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width + 1)
    assert not rows[:, 0].any()
    return rows[:, 1:]


def test_png_round_trip(tmp_path: Path) -> None:
    img = (np.arange(7 * 11) * 3 % 256).astype(np.uint8).reshape(7, 11)
    write_png(tmp_path / "i.png", img)
    np.testing.assert_array_equal(_decode_png((tmp_path / "i.png").read_bytes()), img)
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(tmp_path / "i.png") as pil:
        np.testing.assert_array_equal(np.asarray(pil), img)
    with pytest.raises(ValueError):
        write_png(tmp_path / "bad.png", img.astype(np.float32))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_atomic_write_has_normal_permissions(tmp_path: Path) -> None:
    write_png(tmp_path / "perm.png", np.zeros((2, 2), np.uint8))
    mode = (tmp_path / "perm.png").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_read_source_file_skips_comment_lines(tmp_path: Path) -> None:
    """Ours: a '#' line is a comment (the C program reads it as a source of zeros)."""
    p = write_text(tmp_path / "s.txt", "# X Y Z w lambda\n  # indented\n-10 0 0 1 1e-10\n")
    np.testing.assert_array_equal(read_source_file(p), [[-10, 0, 0, 1, 1e-10]])
    c_like = read_source_file(p, strict=False)
    assert c_like.shape == (3, 5) and not c_like[:2].any()
