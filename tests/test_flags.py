"""The C program's command-line semantics: defaults, precedence and substring quirks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nanobragg_jax as nb
from nanobragg_jax.flags import FlagError

BASE = "-cell 100 100 100 90 90 90 -default_F 100 -detpixels 64"


def parse(extra: str = "", base: str = BASE):
    return nb.from_cli_args((base + " " + extra).split())


def test_defaults_match_the_c_program():
    exp = nb.from_cli_args("-cell 100 100 100 90 90 90 -default_F 100".split())
    p, s = exp.params, exp.setup
    assert (s.spixels, s.fpixels) == (1024, 1024)
    assert float(p.wavelength) == 1.0
    assert float(p.distance) == 100.0
    assert float(p.pixel_size) == pytest.approx(0.1)
    assert float(p.fluence) == pytest.approx(1.25932015286227e29, rel=1e-12)
    assert float(p.kahn_factor) == 0.0
    assert s.convention == "MOSFLM" and s.pivot == "BEAM"
    assert list(p.N) == [1.0, 1.0, 1.0]
    assert exp.options["adc"] == 40.0
    assert exp.options["floatfile"] == "floatimage.bin" and exp.options["intfile"] == "intimage.img"
    # MOSFLM beam centre: detector centre plus half a pixel, i.e. (Xbeam, Ybeam) = 51.25 mm
    assert list(p.beam_center) == pytest.approx([51.25, 51.25])


def test_mosaic_spread_without_domains_gives_ten():
    assert parse("-mosaic 0.5").setup.mosaic_domains == 10
    assert parse("-mosaic_dom 7").setup.mosaic_domains == 1  # no spread: one domain
    assert parse("-mosaic 0.5 -mosaic_dom 4").setup.mosaic_domains == 4


def test_N_is_set_from_crystal_size():
    # (the C program clamps -N 0 to 1; we refuse it: tests/test_bad_input.py zero-N)
    # 0.5 µm crystal of 100 Å cells → 50 cells
    assert list(parse("-xtalsize 0.0005").params.N) == [50.0, 50.0, 50.0]


def test_short_cell_is_refused():
    # the C program fills in b = c = a and 90° angles for missing -cell numbers, silently;
    # a short -cell is almost always a typo, so it is an error here (docs/c-differences.md)
    with pytest.raises(FlagError, match="-cell needs 6 numbers"):
        nb.from_cli_args("-cell 80 -default_F 1 -detpixels 8".split())


def test_close_distance_sets_the_near_distance():
    # "-close_distance" does not contain "-distance" (an underscore precedes it), so
    # only its own branch runs; the distance follows from it.
    exp = parse("-close_distance 90 -detector_rotx 0")
    assert exp.info["distance"] == pytest.approx(0.09)
    assert exp.setup.close_distance_given
    assert exp.info["close_distance"] == pytest.approx(0.09)


def test_twotheta_axis_also_resets_twotheta():
    """'-twotheta_axis 0 1 0' contains '-twotheta': the C program reads 2θ = 0 from it."""
    exp = parse("-twotheta 15 -twotheta_axis 0 1 0")
    assert float(exp.params.twotheta) == 0.0
    assert exp.setup.convention == "CUSTOM"
    exp = parse("-twotheta_axis 0 1 0 -twotheta 15")
    assert float(exp.params.twotheta) == pytest.approx(15.0)


def test_misset_seed_also_sets_a_misset_from_the_next_words():
    exp = parse("-misset random -misset_seed 12345 -nopgm -nonoise")
    assert list(exp.params.misset) == pytest.approx([12345.0, 0.0, 0.0])


def test_substring_matches_need_the_hyphen():
    """strstr looks for "-seed", which "-mosaic_seed" does not contain (an underscore
    precedes "seed"); likewise "-pgmscale" does not reach "-scale"."""
    exp = parse("-mosaic_seed 777 -nonoise")
    assert exp.options["seed"] is None
    exp = parse("-pgmscale 3 -nonoise")
    assert exp.options["intfile_scale"] == 0.0 and exp.options["pgm_scale"] == 3.0
    exp = parse("-seed 5 -nonoise")
    assert exp.options["seed"] == -5


def test_flag_that_needs_a_following_argument_at_the_end():
    assert not parse("-curved_det").setup.curved_detector
    assert parse("-curved_det -nonoise").setup.curved_detector


def test_custom_vectors_switch_convention_and_drop_the_half_pixel():
    exp = parse("-spindle_axis 0 1 0 -nonoise")
    assert exp.setup.convention == "CUSTOM"
    assert exp.info["Fbeam"] == pytest.approx(3.2e-3)  # 64 px × 0.1 mm / 2, no ½-pixel shift
    assert parse("-pix0_vector 0.1 0 0").setup.convention == "CUSTOM"


def test_conventions_and_pivots():
    assert parse("-xds").setup.pivot == "SAMPLE"
    assert parse("-dials").setup.pivot == "SAMPLE"  # this C version: the convention forces SAMPLE
    assert parse("-pivot sample -twotheta 5").setup.pivot == "BEAM"  # MOSFLM forces BEAM
    assert parse("-pivot sample -spindle_axis 0 0 1").setup.pivot == "SAMPLE"


def test_sampling_rules():
    s = parse("-phi 10 -osc 20 -phisteps 4").setup
    assert s.phisteps == 4
    p = parse("-phi 10 -osc 20 -phisteps 4").params
    assert float(p.phistep) == pytest.approx(5.0)
    s = parse("-osc 1").setup
    assert s.phisteps == 2
    s = parse("-hdivrange 2 -vdivrange 1 -hdivstep 0.5 -vdivstep 0.5").setup
    assert s.n_sources == len(s.div_tics) and 0 < s.n_sources < 4 * 2
    s = parse("-divergence 1.5 -divsteps 3 -square_div").setup
    assert s.n_sources == 9
    s = parse("-dispersion 5 -dispsteps 4").setup
    assert s.dispsteps == 4 and s.n_sources == 4
    s = parse("-detector_thick 450 -detector_abs 500 -thicksteps 5").setup
    assert s.thicksteps == 5 and s.thick_divisor == 4.0


def test_interpolation_auto_selection():
    assert not parse("-N 5").setup.interpolate  # no HKL grid → nothing to interpolate
    assert not parse("-N 2").setup.interpolate


@pytest.mark.parametrize("argv,needle", [
    ("-cell 100 100 100 90 90 90 -default_F 100 -bogus 3", "unknown flag -bogus"),
    ("-cell 100 100 100 90 90 90 -default_F", "-default_F needs 1 value"),
    ("-cell 100 100 100 90 90 90 -default_F abc", "-default_F: 'abc' is not a number"),
    ("-cell 100 100 100 90 90 90 -default_F 1 -lambda nan", "-lambda"),
    ("-cell 100 100 100 90 90 90", "no structure factors"),
    ("-default_F 100", "no unit cell"),
    ("-cell 100 100 100 90 90 90 -default_F 1 -pixel 0", "pixel size must be positive"),
    ("-cell 100 100 100 90 90 90 -default_F 1 -roi 10 5 0 3", "-roi"),
    ("-cell 100 100 100 0 0 180 -default_F 1", "-cell: alpha = 0: the cell angle must be positive"),
    ("-cell 100 100 100 10 10 170 -default_F 1", "impossible cell"),
    ("-cell 100 100 100 90 90 90 -default_F 1 -pivot sideways", "-pivot"),
])
def test_bad_flags_raise_one_clear_error(argv, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FlagError) as err:
        nb.from_cli_args(argv.split())
    assert needle in str(err.value)
    assert "\n" not in str(err.value)
