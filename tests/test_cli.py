"""The ``nanoBragg`` command line: outputs, their defaults and formats, the log, traces, noise.

Most tests call ``cli.main`` in process (fast); a few run the installed console script and
``python -m nanobragg_jax`` as subprocesses.  Small detectors keep every render well under a
second once compiled.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import jax
import numpy as np
import pytest

from nanobragg_jax import cli, report
from nanobragg_jax.cli import main
from nanobragg_jax.flags import FLAGS
from nanobragg_jax.io.smv import read_smv

REPO = Path(__file__).resolve().parents[1]
BASE = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2",
        "-N", "5", "-distance", "100", "-detpixels", "64"]
QUIET = ["-noprogress"]


class Run:
    def __init__(self, rc, out, err, folder):
        self.rc, self.out, self.err, self.folder = rc, out, err, Path(folder)

    def floats(self, name="floatimage.bin", shape=(64, 64)):
        return np.fromfile(self.folder / name, dtype="<f4").reshape(shape)

    def value(self, pattern: str) -> list[float]:
        m = re.search(pattern, self.out, re.M)
        assert m, f"{pattern!r} not in log"
        return [float(x) for x in m.groups()]


def run_cli(args, folder) -> Run:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in args])
    finally:
        os.chdir(cwd)
    return Run(rc, out.getvalue(), err.getvalue(), folder)


# -- help ---------------------------------------------------------------------------------------


def test_help_lists_every_flag_with_units_and_default(capsys):
    assert main(["-h"]) == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    for spec in FLAGS:
        for name in spec.names:
            assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), name
        if spec.units and spec.units != "file":
            assert f"units: {spec.units}" in flat, spec.names[0]
        if spec.default:
            assert f"default: {spec.default}" in flat, spec.names[0]


@pytest.mark.parametrize("args", [[], ["--help"], ["-help"], ["-cell", "1", "-h"]])
def test_help_forms_exit_zero(args, capsys):
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("usage: nanoBragg")


# -- which files, and their names ---------------------------------------------------------------


def test_default_outputs_are_the_c_programs(tmp_path):
    run = run_cli(BASE + QUIET + ["-seed", "3"], tmp_path)
    assert run.rc == 0, run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "floatimage.bin", "image.pgm", "intimage.img", "noiseimage.img"]
    for line in ("writing floatimage.bin as 4096 4-byte floats", "writing intimage.img as 2-byte integers",
                 "writing image.pgm as 1-byte integers", "writing noiseimage.img as 2-byte integers"):
        assert line in run.out.splitlines()


def test_nopgm_nonoise_leave_float_and_int_only(tmp_path):
    run = run_cli(BASE + QUIET + ["-nopgm", "-nonoise"], tmp_path)
    assert run.rc == 0, run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floatimage.bin", "intimage.img"]


def test_output_name_aliases(tmp_path):
    run = run_cli(BASE + QUIET + ["-floatimage", "a.bin", "-intimage", "b.img", "-pgmimage", "c.pgm",
                                  "-noiseimage", "d.img", "-seed", "1"], tmp_path)
    assert run.rc == 0, run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.img", "c.pgm", "d.img"]


def test_no_temporary_files_are_left(tmp_path):
    run = run_cli(BASE + QUIET + ["-pngfile", "p.png", "-seed", "2"], tmp_path)
    assert run.rc == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or "tmp" in p.name]


# -- the integer image ---------------------------------------------------------------------------


def test_intfile_auto_scale_adc_and_rounding(tmp_path):
    run = run_cli(BASE + QUIET + ["-nopgm", "-nonoise"], tmp_path)
    img = run.floats()
    data = read_smv(tmp_path / "intimage.img").data
    scale = 55000.0 / float(img.max())
    assert run.value(r"^intfile_scale = (\S+)$")[0] == pytest.approx(scale, rel=1e-5)
    expected = np.floor((img.astype(np.float64) * scale + 40.0 + 0.5).astype(np.float32))
    assert np.array_equal(data, np.clip(expected, 0, 65535).astype(np.uint16))
    assert data.max() == 55040 and data.min() >= 40


def test_intfile_explicit_scale_adc_and_clipping(tmp_path):
    run = run_cli(BASE + QUIET + ["-nopgm", "-nonoise", "-scale", "1000", "-adc", "7"], tmp_path)
    img = run.floats().astype(np.float64)
    data = read_smv(tmp_path / "intimage.img").data.astype(np.float64)
    expected = np.clip(np.floor(img * 1000 + 7 + 0.5), 0, 65535)
    assert np.array_equal(data, expected)
    assert (data == 65535).sum() == (img * 1000 + 7 > 65535).sum() > 0  # clipped, not wrapped
    assert "intfile_scale = 1000" in run.out


def test_roi_outputs_zero_outside(tmp_path):
    run = run_cli(BASE + QUIET + ["-roi", "10", "20", "5", "30", "-nonoise", "-pngfile", "p.png"], tmp_path)
    assert run.rc == 0, run.err
    img = run.floats()
    ints = read_smv(tmp_path / "intimage.img").data
    outside = np.ones(img.shape, bool)
    outside[5:31, 10:21] = False
    assert np.all(img[outside] == 0) and np.all(ints[outside] == 0)
    assert np.all(ints[~outside] >= 40) and img[~outside].max() > 0
    pgm = (tmp_path / "image.pgm").read_bytes()
    pix = np.frombuffer(pgm[-64 * 64:], np.uint8).reshape(64, 64)
    assert np.all(pix[outside] == 0)
    assert "  roi: 10 < x < 20 && 5 < y < 30" in run.out.splitlines()


def test_smv_files_open_in_fabio(tmp_path):
    fabio = pytest.importorskip("fabio")
    run = run_cli(BASE + QUIET + ["-detpixels_f", "48", "-detpixels_s", "32", "-seed", "9", "-nopgm"], tmp_path)
    assert run.rc == 0, run.err
    ints = read_smv(tmp_path / "intimage.img").data
    assert ints.shape == (32, 48)
    for name in ("intimage.img", "noiseimage.img"):
        frame = fabio.open(str(tmp_path / name))
        ours = read_smv(tmp_path / name)
        assert frame.data.shape == (32, 48)
        assert np.array_equal(np.asarray(frame.data), ours.data)
        assert float(frame.header["PIXEL_SIZE"]) == pytest.approx(0.1)
        assert frame.header["DIALS_ORIGIN"].rstrip(";") == ours.header["DIALS_ORIGIN"]
    assert fabio.open(str(tmp_path / "intimage.img")).data.max() == 55040


# -- previews ------------------------------------------------------------------------------------


def _pgm(path: Path):
    raw = path.read_bytes()
    magic, size, comment, maxval, rest = raw.split(b"\n", 4)
    w, h = (int(x) for x in size.split())
    return magic, (h, w), comment.decode(), int(maxval), np.frombuffer(rest, np.uint8).reshape(h, w)


def test_pgm_auto_scale_from_rmsd(tmp_path):
    run = run_cli(BASE + QUIET + ["-nonoise"], tmp_path)
    img = run.floats().astype(np.float64)
    rmsd = run.value(r"^mean= \S+ rms= \S+ rmsd= (\S+)$")[0]
    scale = 250.0 / (5.0 * rmsd)
    magic, shape, comment, maxval, pix = _pgm(tmp_path / "image.pgm")
    assert (magic, shape, maxval) == (b"P5", (64, 64), 255)
    assert comment == "# pixels scaled by %g" % scale
    assert run.value(r"^pgm_scale = (\S+)$")[0] == pytest.approx(scale, rel=1e-5)
    assert np.array_equal(pix, np.floor(np.minimum(255.0, img * float(comment.split()[-1]))).astype(np.uint8)) or \
        np.abs(pix.astype(int) - np.floor(np.minimum(255.0, img * scale))).max() <= 1
    assert pix.max() == 255 and pix.min() == 0


def test_pgmscale_flag_and_png_preview(tmp_path):
    run = run_cli(BASE + QUIET + ["-nonoise", "-pgmscale", "2", "-pngfile", "preview.png"], tmp_path)
    img = run.floats().astype(np.float64)
    _, _, comment, _, pix = _pgm(tmp_path / "image.pgm")
    assert comment == "# pixels scaled by 2"
    assert np.array_equal(pix, np.floor(np.minimum(255.0, img * 2.0)).astype(np.uint8))
    rgb = _png_rgb(tmp_path / "preview.png")
    # a preview to read, not the PGM: log grey scale (dark = bright), the beam centre as a
    # red cross, resolution rings in blue
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    grey = (r == g) & (g == b)
    order = np.argsort(img[grey], kind="stable")
    levels = r[grey][order]
    assert np.all(np.diff(levels) <= 0), "brighter pixels must be darker"
    assert levels[0] == 255 and levels[-1] <= 5  # empty pixels white, spot cores black
    spots = grey & (img > 0.01 * img.max()) & (img < 0.1 * img.max())
    assert spots.any() and np.all(r[spots] < 200)  # spot tails show (a linear scale: >= 229)
    red = (r == 220) & (g == 30) & (b == 30)
    ys, xs = np.nonzero(red)
    assert red.sum() >= 5 and abs(ys.mean() - 31.5) <= 1.0 and abs(xs.mean() - 31.5) <= 1.0
    assert np.count_nonzero((b > r + 40) & ~grey) > 20  # rings
    assert "writing preview.png as an RGB PNG preview (log scale" in run.out
    assert " A)" in run.out and "rings (blue) at" in run.out


def _png_rgb(path) -> np.ndarray:
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert (depth, colour) == (8, 2)
    idat = b""
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind = png[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 3 * w + 1)
    assert np.all(rows[:, 0] == 0)
    return rows[:, 1:].reshape(h, w, 3)


def test_png_without_pgm(tmp_path):
    run = run_cli(BASE + QUIET + ["-nonoise", "-nopgm", "-pngfile", "x.png"], tmp_path)
    assert run.rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floatimage.bin", "intimage.img", "x.png"]


# -- statistics and the log -----------------------------------------------------------------------


def test_statistics_follow_the_c_definitions(tmp_path):
    args = ["-cell", "70", "80", "90", "75", "85", "95", "-default_F", "100", "-lambda", "1", "-N", "5",
            "-distance", "100", "-detpixels", "48", "-oversample", "2", "-nonoise", "-nopgm"] + QUIET
    run = run_cli(args, tmp_path)
    assert run.rc == 0, run.err
    img = run.floats(shape=(48, 48)).astype(np.float64)
    max_I, x, y = run.value(r"^max_I = (\S+)  at (\S+) (\S+)$")
    s, f = np.unravel_index(np.argmax(img), img.shape)
    assert max_I == pytest.approx(img.max(), rel=1e-5)
    # the position of the last sub-pixel of the brightest pixel: (index + 1 - 1/(2·oversample))·pixel
    assert x == pytest.approx((f + 1 - 0.25) * 1e-4, rel=1e-5)
    assert y == pytest.approx((s + 1 - 0.25) * 1e-4, rel=1e-5)
    mean, rms, rmsd = run.value(r"^mean= (\S+) rms= (\S+) rmsd= (\S+)$")
    n = img.size
    assert mean == pytest.approx(img.mean(), rel=1e-5)
    assert rms == pytest.approx(math.sqrt((img ** 2).sum() / (n - 1)), rel=1e-5)
    assert rmsd == pytest.approx(img.std(ddof=1), rel=1e-5)
    assert "  2x2 pixel oversample steps" in run.out.splitlines()
    assert "solid angle subtended by detector" in run.out


def test_statistics_with_mask_exclude_masked_pixels_but_rmsd_does_not():
    """The C program's asymmetry, checked on synthetic data through report.image_statistics."""
    import dataclasses

    from nanobragg_jax import from_cli_args

    exp = from_cli_args(["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1", "-detpixels", "4"])
    mask = np.ones((4, 4))
    mask[0, :] = 0
    exp.setup = dataclasses.replace(exp.setup, has_mask=True, roi=(0, 4, 0, 4))
    exp.params = exp.params.replace(mask=mask)
    img = np.arange(16, dtype=np.float32).reshape(4, 4) + 1
    img[0, :] = 0
    st = report.image_statistics(img, exp)
    vals = img[1:].astype(np.float64).ravel()
    assert st.n_rendered == 12 and st.n_roi == 16
    assert st.mean == pytest.approx(vals.mean())
    assert st.rms == pytest.approx(math.sqrt((vals ** 2).sum() / 11))
    assert st.rmsd == pytest.approx(math.sqrt(((img.astype(np.float64).ravel() - vals.mean()) ** 2).sum() / 15))
    assert st.max_I == 16 and st.max_pixel == (3, 3)
    zero = report.image_statistics(np.zeros((4, 4), np.float32), exp)
    assert (zero.max_I, zero.max_I_x, zero.max_I_y, zero.max_pixel) == (0.0, 0.0, 0.0, None)


def test_log_reports_geometry_like_the_c_program(tmp_path):
    run = run_cli(BASE + QUIET + ["-nonoise", "-nopgm", "-Xbeam", "3", "-Ybeam", "4"], tmp_path)
    lines = run.out.splitlines()
    for expected in ("mosflm convention selected.", "pivoting detector around direct beam spot",
                     "  Xbeam=0.003 Ybeam=0.004", "  Fbeam=0.00405 Sbeam=0.00305",
                     "  distance=0.1 detsize=0.0064x0.0064  pixel=0.0001 meters (64x64 pixels)",
                     "  1 sources", "  1x1 pixel oversample steps", "Unit Cell: 100 100 100 90 90 90"):
        assert expected in lines, expected


def test_seed_is_reported_and_time_based_by_default(tmp_path):
    run = run_cli(BASE + QUIET + ["-nopgm"], tmp_path)
    seed = int(run.value(r"^  seed: (-?\d+)$")[0])
    assert seed < -1_600_000_000  # -time(): negative seconds since 1970
    run2 = run_cli(BASE + QUIET + ["-nopgm", "-seed", "77"], tmp_path)
    assert "  seed: -77" in run2.out.splitlines()


# -- traces ---------------------------------------------------------------------------------------


def _final(text: str) -> float:
    return float(re.search(r"final value \(photons\) = (\S+)", text).group(1))


@pytest.mark.parametrize("extra", [
    [],
    ["-mosaic", "0.5", "-mosaic_dom", "3", "-phi", "1", "-osc", "2", "-phisteps", "2", "-oversample", "2"],
    ["-detector_thick", "100", "-detector_abs", "300", "-thicksteps", "2", "-oversample_thick", "-polar", "0.9"],
])
def test_trace_pixel_reproduces_the_image_value(tmp_path, extra):
    run = run_cli(BASE + QUIET + ["-nonoise", "-nopgm", "-trace_pixel", "20", "37"] + extra, tmp_path)
    assert run.rc == 0, run.err
    img = run.floats()
    assert _final(run.out) == pytest.approx(float(img[20, 37]), rel=1e-6, abs=1e-30)
    text = run.out
    assert "TRACE pixel slow=20 fast=37" in text
    for word in ("pix0", "steps = sources x mosaic domains x phi steps x oversample^2", "omega =",
                 "capture =", "polarization =", "q = (", "F_cell", "F_latt", "r_e^2 * fluence * I / steps"):
        assert word in text, word


def test_printout_pixel_prints_the_c_block(tmp_path):
    run = run_cli(BASE + QUIET + ["-nonoise", "-nopgm", "-printout_pixel", "37", "20"], tmp_path)
    assert run.rc == 0, run.err
    img = run.floats()
    lines = run.out.splitlines()
    k = next(i for i, l in enumerate(lines) if l.startswith("  37   20 : stol = "))
    block = dict(re.match(r"^(\S+)\s+(\S+)$", l).groups() for l in lines[k + 4:k + 9])
    pixel = float(block["pixel"])
    assert pixel == pytest.approx(float(img[20, 37]), rel=1e-6)
    fluence = 1.25932015286227e29
    recomputed = 7.94079248018965e-30 * fluence * float(block["I/steps"]) * float(block["polar"]) * \
        float(block["omega"]) * float(block["capfrac"])
    assert recomputed == pytest.approx(pixel, rel=1e-6)
    h = [float(x) for x in re.search(r"hkl= (\S+) (\S+) (\S+)", lines[k + 2]).groups()]
    h0 = [int(x) for x in re.search(r"hkl0= (\S+) (\S+) (\S+)", lines[k + 2]).groups()]
    assert h0 == [math.ceil(x - 0.5) for x in h]
    assert "TRACE pixel slow=20 fast=37" in run.out


def test_printout_prints_every_rendered_pixel(tmp_path):
    run = run_cli(["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-detpixels", "4",
                   "-pixel", "5", "-distance", "20", "-roi", "1", "2", "0", "3", "-printout", "-nonoise",
                   "-nopgm"], tmp_path)
    assert run.rc == 0, run.err
    heads = re.findall(r"^\s*(\d+)\s+(\d+) : stol = ", run.out, re.M)
    assert [(int(f), int(s)) for f, s in heads] == [(f, s) for s in range(4) for f in (1, 2)]


# -- noise ---------------------------------------------------------------------------------------


def _noise(tmp_path, *extra):
    folder = tmp_path / ("n" + "_".join(extra).replace("-", ""))
    folder.mkdir()
    run = run_cli(BASE + QUIET + ["-nopgm"] + list(extra), folder)
    assert run.rc == 0, run.err
    return read_smv(folder / "noiseimage.img").data, run


@pytest.mark.parametrize("mode", [[], ["-noise_exact"]])
def test_noise_same_seed_same_image_other_seed_other_image(tmp_path, mode):
    a, run = _noise(tmp_path, "-seed", "11", *mode)
    b, _ = _noise(tmp_path, "-seed", "11", "-adc", "40", *mode)
    c, _ = _noise(tmp_path, "-seed", "12", *mode)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    photons, overloads = run.value(r"^(\d+) photons on noise image \((\d+) overloads\)$")
    assert photons == (a.astype(np.float64) - 40).sum() and overloads == 0


def test_noise_fast_and_exact_agree_statistically(tmp_path):
    fast, run = _noise(tmp_path, "-seed", "5")
    exact, _ = _noise(tmp_path, "-seed", "5", "-noise_exact")
    img = run.floats().astype(np.float64)
    for noisy in (fast, exact):
        counts = noisy.astype(np.float64) - 40.0
        assert abs(counts.sum() - img.sum()) < 5 * math.sqrt(img.sum())
        bright = img > 20
        z = (counts[bright] - img[bright]) / np.sqrt(img[bright])
        assert abs(z.mean()) < 0.2 and abs(z.std() - 1) < 0.15


def test_noise_overloads_are_counted_and_clipped(tmp_path):
    for mode in ([], ["-noise_exact"]):
        noisy, run = _noise(tmp_path, "-seed", "3", "-fluence", "1e33", *mode)
        img = run.floats().astype(np.float64)
        photons, overloads = run.value(r"^(\d+) photons on noise image \((\d+) overloads\)$")
        assert overloads == (noisy == 65535).sum() > 0
        assert overloads == pytest.approx((img + 40 > 65535).sum(), abs=20)


# -- precision, progress, robustness ---------------------------------------------------------------


def test_float32_run_restores_the_x64_setting(tmp_path):
    before = bool(jax.config.jax_enable_x64)
    run = run_cli(BASE + QUIET + ["-nonoise", "-nopgm", "-dtype", "float32"], tmp_path)
    assert run.rc == 0, run.err
    assert bool(jax.config.jax_enable_x64) == before
    f32 = run.floats()
    (tmp_path / "d").mkdir()
    run64 = run_cli(BASE + QUIET + ["-nonoise", "-nopgm"], tmp_path / "d")
    f64 = run64.floats()
    assert np.allclose(f32, f64, rtol=1e-3, atol=1e-3 * f64.max())


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_spinner_only_on_a_terminal():
    tty = _TTY()
    with cli.Spinner("rendering", tty, enabled=True, delay=0.0):
        import time

        time.sleep(0.3)
    assert "rendering" in tty.getvalue() and "done in" in tty.getvalue()
    plain = io.StringIO()
    with cli.Spinner("rendering", plain, enabled=False, delay=0.0):
        pass
    assert plain.getvalue() == ""
    assert cli._progress_wanted({"progress": True}, _TTY())
    assert not cli._progress_wanted({"progress": True}, io.StringIO())
    assert not cli._progress_wanted({"progress": False}, _TTY())
    assert not cli._progress_wanted({"progress": True, "printout": True}, _TTY())


def test_existing_output_is_replaced_whole(tmp_path):
    (tmp_path / "floatimage.bin").write_bytes(b"x" * 100000)
    run = run_cli(BASE + QUIET + ["-nonoise", "-nopgm"], tmp_path)
    assert run.rc == 0
    assert (tmp_path / "floatimage.bin").stat().st_size == 64 * 64 * 4


# -- the installed command --------------------------------------------------------------------------


def _env(tmp_path):
    env = dict(os.environ)
    env["NANOBRAGG_JAX_CACHE"] = str(tmp_path / "cache")
    env.pop("NANOBRAGG_DEBUG", None)
    return env


def _console_script() -> str:
    exe = Path(sys.executable).with_name("nanoBragg")
    if not exe.exists():
        pytest.skip("console script nanoBragg not installed next to the interpreter")
    return str(exe)


@pytest.mark.slow
def test_console_script_end_to_end(tmp_path):
    proc = subprocess.run([_console_script()] + BASE + ["-nonoise", "-seed", "4"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["floatimage.bin", "image.pgm",
                                                                        "intimage.img"]
    assert "max_I = " in proc.stdout
    assert any((tmp_path / "cache").iterdir())  # compiled kernels are cached for the next run


def test_console_script_warm_run_loads_its_programs_and_renders_the_same_image(tmp_path):
    """The command stores its compiled programs (cache folder, programs/); a second run loads
    them without tracing, and a damaged one is replaced, never trusted."""
    cmd = [_console_script()] + BASE + ["-nonoise", "-nopgm"]
    env = _env(tmp_path)
    images = []
    for run in range(3):
        work = tmp_path / f"run{run}"
        work.mkdir()
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        images.append((work / "floatimage.bin").read_bytes())
        programs = sorted((tmp_path / "cache" / "programs").glob("program-*.bin"))
        assert programs
        if run == 1:
            programs[0].write_bytes(b"damaged")
    assert images[0] == images[1] == images[2]
    assert all(p.read_bytes() != b"damaged" for p in programs)


def test_console_script_error_is_one_line(tmp_path):
    proc = subprocess.run([_console_script()] + BASE + ["-lambda", "zero"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "nanoBragg: error: -lambda: 'zero' is not a number\n"
    assert not list(tmp_path.glob("*.img")) and not list(tmp_path.glob("*.bin"))


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nanobragg_jax", "-h"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: nanoBragg")
    proc = subprocess.run([sys.executable, "-m", "nanobragg_jax", "-cell", "1", "2"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("nanoBragg: error: ")
    assert "Traceback" not in proc.stderr


def test_a_closed_stdout_does_not_stop_the_run(tmp_path, monkeypatch):
    class Closing(io.StringIO):
        def write(self, text):
            if self.tell() > 200:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    monkeypatch.setattr(sys, "stdout", Closing())
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        rc = main(BASE + QUIET + ["-nonoise", "-nopgm"])
    finally:
        os.chdir(cwd)
    assert rc == 0
    assert (tmp_path / "floatimage.bin").stat().st_size == 64 * 64 * 4
    assert (tmp_path / "intimage.img").stat().st_size == 512 + 64 * 64 * 2


def test_cli_reference_documents_every_flag():
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for spec in FLAGS:
        for name in spec.names:
            assert f"`{name}`" in text, name
    for word in ("floatimage.bin", "intimage.img", "image.pgm", "noiseimage.img", "DIALS_ORIGIN",
                 "-noise_exact", "exit status 2"):
        assert word in text, word


def test_our_log_lines_and_show_config(tmp_path):
    """Lines of ours that say what the C log leaves implicit, and the -show_config block."""
    (tmp_path / "src.txt").write_text("# X Y Z weight lambda\n-10 0 0 1 6.2e-10\n-10 0.01 0 1 6.2e-10\n")
    header = (b"{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
              b"SIZE1=64;\nSIZE2=64;\nPIXEL_SIZE=0.1;\nDISTANCE=100;\n}\f")
    (tmp_path / "h.img").write_bytes(header + b" " * (512 - len(header)) + bytes(64 * 64 * 2))
    run = run_cli(BASE + QUIET + ["-nonoise", "-nopgm", "-sourcefile", "src.txt", "-img", "h.img",
                                  "-spindle_axis", "0", "0", "1", "-detector_rotx", "2", "-echo_config",
                                  "-printout_pixel", "3", "4", "-trace_pixel", "4", "3"], tmp_path)
    assert run.rc == 0, run.err
    lines = run.out.splitlines()
    for line in ("Loaded 2 sources from src.txt", "Convention: CUSTOM (selected by -spindle_axis)",
                 "Statistics of the 4096 rendered pixels (photons per pixel):",
                 "Limiting output to pixel fast=3 slow=4 (-printout_pixel f s)",
                 "Tracing pixel slow=4 fast=3 (-trace_pixel s f)", "CONFIGURATION ECHO (-show_config): "
                 "the values this run renders with", "Crystal Configuration:", "Beam Configuration:",
                 "Detector Configuration:", "  Wavelength: 6.2000 Å", "  Sources: 2 (Loaded 2 sources from src.txt)",
                 "  Convention: CUSTOM, pivot BEAM"):
        assert line in lines, line
    assert any(l.startswith("Read header from -img file h.img") for l in lines)
    assert any(l.startswith("Debug output enabled (-printout)") for l in lines)
    assert any(l.startswith("printout summary: Image shape 64x64 (slow x fast); Max intensity ") for l in lines)
    assert any(l.startswith("  Cell: a=100.000 b=100.000 c=100.000 Å") for l in lines)
    assert any(l.startswith("  Rotations: rotx=2.000° roty=0.000° rotz=0.000° twotheta=0.000°") for l in lines)
    # the echo comes after the C log and before the render's output
    assert lines.index("Detector Configuration:") < next(i for i, l in enumerate(lines) if l.startswith("max_I"))
