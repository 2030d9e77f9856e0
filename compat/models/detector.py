"""``Detector``: the port's detector model (basis vectors, pix0, pixel positions, solid angle).

All geometry comes from the core's ``detector_frame`` (conventions, pivots, rotations,
2θ, the C program's distance/close-distance relation) for the current ``config``.
Units as in the port: metres for positions and distances, pixels for the beam centre.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nanobragg_jax.geometry import detector as det_geo

from .._common import Component, evaluate
from .._translate import RunOptions, build
from ..config import BeamConfig, CrystalConfig, DetectorConfig, DetectorConvention, DetectorPivot  # noqa: F401

__all__ = ["Detector"]

_MM = 1e-3


@partial(jax.jit, static_argnums=0)
def _frame(setup, params):
    return det_geo.detector_frame(setup, params)


@partial(jax.jit, static_argnums=0)
def _pixel_coords(setup, params):
    return _pixel_centres(setup, det_geo.detector_frame(setup, params))


@partial(jax.jit, static_argnums=0)
def _solid_angle(setup, params, coords):
    frame = det_geo.detector_frame(setup, params)
    if coords is None:
        coords = _pixel_centres(setup, frame)
    R = jnp.sqrt(jnp.sum(coords * coords, axis=-1))
    return det_geo.solid_angle(setup, frame, R)


class Detector(Component):
    """Detector geometry (the port's ``models.detector.Detector``).

    Args:
      config: the detector's configuration (default ``DetectorConfig()``: the C
        program's 1024 × 1024 pixels of 0.1 mm at 100 mm, MOSFLM convention).
      device, dtype: as for ``Crystal``.
    """

    def __init__(self, config: Optional[DetectorConfig] = None, device: Any = None, dtype: Any = None):
        self.config = config if config is not None else DetectorConfig()
        self._init_device(device, dtype)

    # -- evaluation -------------------------------------------------------------------
    def _evaluate(self, fn, state=None):
        state = state if state is not None else (self.config,)
        return evaluate(fn, state, dtype=self._np_dtype, torch_io=self._torch_io, device=self._device_arg)

    def _built(self, d, dt):
        return build(CrystalConfig(default_F=1.0), d, BeamConfig(), dtype=dt, run=RunOptions(oversample=1),
                     device=self._jax_device)

    def _frame_value(self, pick):
        def fn(d, dt):
            b = self._built(d, dt)
            return pick(_frame(b.setup, b.params))

        return self._evaluate(fn)

    # -- sizes and distances --------------------------------------------------------------
    @property
    def spixels(self) -> int:
        return self.config.spixels

    @spixels.setter
    def spixels(self, value: int) -> None:  # the port's scripts resize a detector in place
        if self.config.roi_ymax == self.config.spixels - 1:  # a full-frame ROI stays full-frame
            self.config.roi_ymax = int(value) - 1
        self.config.spixels = int(value)

    @property
    def fpixels(self) -> int:
        return self.config.fpixels

    @fpixels.setter
    def fpixels(self, value: int) -> None:
        if self.config.roi_xmax == self.config.fpixels - 1:
            self.config.roi_xmax = int(value) - 1
        self.config.fpixels = int(value)

    @property
    def distance(self):
        """Nominal distance from the config (m)."""
        return self._evaluate(lambda d, dt: jnp.asarray(d.distance_mm, dt) * _MM)

    @property
    def pixel_size(self):
        """Pixel size (m)."""
        return self._evaluate(lambda d, dt: jnp.asarray(d.pixel_size_mm, dt) * _MM)

    @property
    def close_distance(self):
        """Distance from the sample to the detector plane along its normal, pix0·odet (m)."""
        return self._frame_value(lambda f: f.close_distance)

    def _placement_value(self, pick):
        def fn(d, dt):
            b = self._built(d, dt)
            return pick(*det_geo.placement_distance(b.setup, b.params))

        return self._evaluate(fn)

    @property
    def distance_corrected(self):
        """The distance the C program places the detector with (m): the configured
        close distance (or |r_factor·distance|) over ``r_factor``.  With the BEAM pivot this
        is the sample–beam-spot distance along the beam."""
        return self._placement_value(lambda ratio, close, distance: distance)

    @property
    def r_factor(self):
        """The C program's ``ratio``: beam · odet after the x, y, z rotations, before 2θ."""
        return self._placement_value(lambda ratio, close, distance: ratio)

    def get_r_factor(self):
        return self.r_factor

    def get_corrected_distance(self):
        return self.distance_corrected

    # -- basis, origin, beam centre ----------------------------------------------------------
    @property
    def fdet_vec(self):
        """Fast axis (unit vector, lab frame) after all rotations."""
        return self._frame_value(lambda f: f.fdet)

    @property
    def sdet_vec(self):
        """Slow axis (unit vector) after all rotations."""
        return self._frame_value(lambda f: f.sdet)

    @property
    def odet_vec(self):
        """Detector normal (unit vector) after all rotations."""
        return self._frame_value(lambda f: f.odet)

    @property
    def pix0_vector(self):
        """Position of the corner of pixel (0, 0) (m)."""
        return self._frame_value(lambda f: f.pix0)

    @property
    def beam_vector(self):
        """Incident beam direction (unit vector, photon propagation)."""
        return self._frame_value(lambda f: f.beam)

    @property
    def beam_center_f(self):
        """Where the direct beam meets the detector, along the fast axis (pixels from pixel
        (0, 0)'s corner; for the MOSFLM convention this includes its half pixel)."""
        return self._frame_value(lambda f: _beam_hit(f)[0] / f.pixel_size)

    @property
    def beam_center_s(self):
        """Where the direct beam meets the detector, along the slow axis (pixels)."""
        return self._frame_value(lambda f: _beam_hit(f)[1] / f.pixel_size)

    def _pixels_to_mm(self, value):
        """A beam centre in pixels (as the properties report it) → the config's mm value."""
        px = self.config.pixel_size_mm
        half = 0.5 * px if self.config.detector_convention == DetectorConvention.MOSFLM else 0.0
        return value * px - half

    @beam_center_f.setter
    def beam_center_f(self, value) -> None:  # the port's scripts move the beam in place (pixels)
        self.config.beam_center_f = self._pixels_to_mm(value)

    @beam_center_s.setter
    def beam_center_s(self, value) -> None:
        self.config.beam_center_s = self._pixels_to_mm(value)

    def _apply_mosflm_beam_convention(self):
        """(Fbeam, Sbeam) in metres from the configured beam centre: the C program's
        convention mapping (MOSFLM: Fbeam = Ybeam + ½ pixel, Sbeam = Xbeam + ½ pixel)."""

        def fn(d, dt):
            b = self._built(d, dt)
            return det_geo.beam_center_on_detector(b.setup, b.params)

        return self._evaluate(fn)

    def verify_beam_center_preservation(self, tolerance: float = 1e-6):
        """``(preserved, details)``: does the direct beam still meet the rotated detector at
        the configured beam centre?  Distances in metres; ``preserved`` when both
        components agree within ``tolerance``.  Always true for the BEAM pivot; for the
        SAMPLE pivot the beam moves with 2θ and the rotations."""

        def fn(d, dt):
            b = self._built(d, dt)
            if b.setup.pivot == "SAMPLE":  # the configured point is the near point
                F0, S0 = det_geo.close_point_on_detector(b.setup, b.params)
            else:
                F0, S0 = det_geo.beam_center_on_detector(b.setup, b.params)
            F1, S1 = _beam_hit(_frame(b.setup, b.params))
            return jnp.stack([F0, S0, F1, S1])

        from .._values import concrete

        v = np.asarray(concrete(self._evaluate(fn)), np.float64)
        details = {"original_beam_f": v[0], "original_beam_s": v[1], "computed_beam_f": v[2],
                   "computed_beam_s": v[3], "error_f": v[2] - v[0], "error_s": v[3] - v[1]}
        details["max_error"] = max(abs(details["error_f"]), abs(details["error_s"]))
        return bool(details["max_error"] <= tolerance), details

    def _is_default_config(self) -> bool:
        """True when the config is the unconfigured one (the C program's default detector)."""
        from .._values import concrete_float
        from ..config import DetectorConvention

        c, ref = self.config, DetectorConfig()
        same = all(concrete_float(getattr(c, n)) == concrete_float(getattr(ref, n)) for n in (
            "distance_mm", "pixel_size_mm", "beam_center_s", "beam_center_f", "detector_rotx_deg",
            "detector_roty_deg", "detector_rotz_deg", "detector_twotheta_deg"))
        return bool(same and c.spixels == ref.spixels and c.fpixels == ref.fpixels
                    and c.detector_convention == DetectorConvention.MOSFLM)

    # -- pixels ------------------------------------------------------------------------------
    def get_pixel_coords(self):
        """Lab position of every pixel centre, shape (spixels, fpixels, 3), in metres
        (on the sphere for a curved detector)."""

        def fn(d, dt):
            b = self._built(d, dt)
            return _pixel_coords(b.setup, b.params)

        return self._evaluate(fn)

    def get_solid_angle(self, pixel_coords=None):
        """Solid angle of every pixel (sr): (pixel/R)²·close_distance/R, or 1/R² for
        ``point_pixel``; R from ``pixel_coords`` (m) when given."""

        def fn(d, coords, dt):
            b = self._built(d, dt)
            return _solid_angle(b.setup, b.params, None if coords is None else jnp.asarray(coords, dt))

        return self._evaluate(fn, (self.config, pixel_coords))


def _beam_hit(frame):
    """(F, S) in metres of the point where the beam ray meets the detector plane.

    Computed from the final frame: t = (pix0·o)/(b·o), hit = t·b.  The C program's own
    Fbeam/Sbeam after 2θ (``frame.Fbeam``) divide by b·o taken *before* the 2θ rotation
    (nanoBragg.c: ``ratio`` is computed from the rotx/y/z-rotated normal only), so with
    2θ ≠ 0 they are not where the beam lands; this is (docs/migration.md).
    """
    o = frame.odet
    t = jnp.dot(frame.pix0, o) / jnp.dot(frame.beam, o)
    v = t * frame.beam - frame.pix0
    return jnp.dot(v, frame.fdet), jnp.dot(v, frame.sdet)


def _pixel_centres(setup, frame):
    """Pixel-centre positions (spixels, fpixels, 3) from the core's sub-pixel mapping with
    one sub-pixel and one sensor layer."""
    setup = dataclasses.replace(setup, oversample=1, thicksteps=1)
    s = jnp.broadcast_to(jnp.arange(setup.spixels)[:, None], (setup.spixels, setup.fpixels))
    f = jnp.broadcast_to(jnp.arange(setup.fpixels)[None, :], (setup.spixels, setup.fpixels))
    pos = det_geo.subpixel_positions(setup, frame, s, f, jnp.zeros((), frame.pix0.dtype))
    return pos.reshape(setup.spixels, setup.fpixels, 3)
