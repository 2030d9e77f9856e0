"""``Simulator``: the port's simulator class, rendering with ``nanobragg_jax.simulate``.

``Simulator(crystal, detector, crystal_config, beam_config).run()`` translates the three
configs into the core's ``Setup`` and ``Params`` (``compat._translate.build``) and calls
``simulate`` — the same image as the core, and as the C program, for the same
configuration.  The configs are read when ``run`` is called, so values assigned to
them after construction count, and a config value that is a JAX tracer makes ``run``
differentiable with ``jax.grad`` (the JAX replacement for ``requires_grad=True`` +
``backward()``).  With torch tensors in the configs (or a torch device/dtype), ``run``
returns a torch tensor whose backward pass is the JAX VJP.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

import jax.numpy as jnp

from nanobragg_jax import simulate
from nanobragg_jax.physics import R_E_SQR

from ._common import Component, evaluate
from ._translate import RunOptions, build
from .config import BeamConfig, CrystalConfig
from .models.crystal import Crystal
from .models.detector import Detector

__all__ = ["Simulator"]

# CrystalConfig fields that a Simulator's crystal_config overrides (as in the port).
_ROTATION_FIELDS = ("phi_start_deg", "osc_range_deg", "phi_steps", "mosaic_spread_deg",
                    "mosaic_domains", "mosaic_seed", "spindle_axis")


def _sample_pixels(image, count: int):
    """``(intensities, slow_indices, fast_indices)`` of ``count`` pixels drawn uniformly without
    replacement (the port's stochastic pixel sampling for SGD).  The whole image is rendered
    and then sampled, so the values and their gradients are the full image's; only the
    cost is not reduced (for that, render a ROI, or use the core's sparse-pixel path)."""
    S, F = image.shape[-2], image.shape[-1]
    n = max(0, min(count, S * F))
    from ._values import is_torch_tensor

    if is_torch_tensor(image):
        import torch

        flat = torch.randperm(S * F, device=image.device)[:n]
        return image.reshape(-1)[flat], flat // F, flat % F
    import numpy as np

    flat = jnp.asarray(np.random.default_rng().permutation(S * F)[:n])
    return image.reshape(-1)[flat], flat // F, flat % F


class Simulator(Component):
    """Renders the diffraction image of ``crystal`` on ``detector``.

    Args:
      crystal, detector: the models (their configs are read at every ``run``).
      crystal_config: when given, its spindle and mosaic settings (phi_start_deg,
        osc_range_deg, phi_steps, mosaic_spread_deg, mosaic_domains, mosaic_seed,
        spindle_axis) replace the crystal's, as in the port.
      beam_config: the beam (default: the crystal's ``beam_config``, else ``BeamConfig()``).
      device, dtype: as for ``Crystal``; None falls back to the crystal's, then the
        detector's, then JAX's default.
      debug_config: ``{"trace_pixel": [slow, fast]}`` makes ``run`` print that pixel's
        ``TRACE_PY:`` lines (``_trace_pixel``); other keys are accepted and ignored.  The
        command line's full trace is ``nanoBragg -trace_pixel s f``.
    """

    def __init__(self, crystal: Crystal, detector: Detector, crystal_config: Optional[CrystalConfig] = None,
                 beam_config: Optional[BeamConfig] = None, device: Any = None, dtype: Any = None,
                 debug_config: Optional[dict] = None):
        if isinstance(crystal_config, BeamConfig) and beam_config is None:
            # Simulator(crystal, detector, beam_config): accepted, as the port's scripts do it
            crystal_config, beam_config = None, crystal_config
        self.crystal = crystal if crystal is not None else Crystal()
        self.detector = detector if detector is not None else Detector()
        self.crystal_config = crystal_config
        if beam_config is None:
            beam_config = getattr(self.crystal, "beam_config", None) or BeamConfig()
        self.beam_config = beam_config
        self.debug_config = debug_config or {}
        if device is None:
            device = getattr(self.crystal, "_device_arg", None) or getattr(self.detector, "_device_arg", None)
        if dtype is None:
            dtype = getattr(self.crystal, "dtype", None) or getattr(self.detector, "dtype", None)
        self._init_device(device, dtype)
        self._torch_io = (self._torch_io or getattr(self.crystal, "_torch_io", False)
                          or getattr(self.detector, "_torch_io", False))

    # -- configuration -------------------------------------------------------------------
    def effective_crystal_config(self) -> CrystalConfig:
        """The crystal's config with this simulator's spindle/mosaic settings applied."""
        base = self.crystal.config
        override = self.crystal_config
        if override is None or override is base:
            return base
        merged = copy.copy(base)
        for name in _ROTATION_FIELDS:
            object.__setattr__(merged, name, getattr(override, name))
        return merged

    def _state(self) -> tuple:
        return (self.effective_crystal_config(), self.detector.config, self.beam_config, self.crystal.hkl_data)

    def _evaluate(self, fn, state=None):
        return evaluate(fn, state if state is not None else self._state(), dtype=self._np_dtype,
                        torch_io=self._torch_io, device=self._device_arg)

    def build(self, run: RunOptions = RunOptions(), dtype: Any = None):
        """The core's ``(Setup, Params)`` for the current configs (a ``Built`` tuple)."""
        from ._common import jax_dtype
        from ._values import resolve_dtype

        c, d, b, hkl_data = self._state()
        dt = jax_dtype(resolve_dtype(dtype) if dtype is not None else self._np_dtype)
        return build(c, d, b, dtype=dt, hkl=self.crystal._hkl_table(hkl_data),
                     interpolate=self.crystal._interpolate, run=run, device=self._jax_device)

    # -- the image -------------------------------------------------------------------------
    def run(self, pixel_batch_size: Optional[int] = None, stochastic_pixel_count: Optional[int] = None,
            override_a_star: Any = None, oversample: Optional[int] = None,
            oversample_omega: Optional[bool] = None, oversample_polar: Optional[bool] = None,
            oversample_thick: Optional[bool] = None):
        """The image in photons per pixel, shape (spixels, fpixels).

        Args:
          pixel_batch_size: detector rows per tile (bounds memory; the core tiles anyway).
          stochastic_pixel_count: return ``(intensities, slow_indices, fast_indices)`` of that
            many pixels drawn at random (the port's SGD sampling; the image is rendered whole).
          override_a_star: the port's experimental hook; not supported (``NotImplementedError``).
          oversample, oversample_omega, oversample_polar, oversample_thick: override the
            detector config for this run.
        """
        if stochastic_pixel_count is not None and pixel_batch_size is not None:
            raise ValueError("stochastic_pixel_count and pixel_batch_size are mutually exclusive")
        if override_a_star is not None:
            raise NotImplementedError("compat: override_a_star is not supported; give the orientation "
                                      "through CrystalConfig.mosflm_a_star/b_star/c_star")
        opts = RunOptions(oversample=oversample, oversample_omega=oversample_omega,
                          oversample_polar=oversample_polar, oversample_thick=oversample_thick,
                          tile_rows=pixel_batch_size)
        crystal = self.crystal
        device = self._jax_device

        def fn(c, d, b, hkl_data, dt):
            built = build(c, d, b, dtype=dt, hkl=crystal._hkl_table(hkl_data),
                          interpolate=crystal._interpolate, run=opts, device=device)
            requested = opts.oversample if opts.oversample is not None else d.oversample
            if requested is None or requested <= 0:
                print(f"auto-selected {built.setup.oversample}-fold oversampling")  # the C program's line
            return simulate(built.setup, built.params)

        image = self._evaluate(fn)
        if self.debug_config.get("trace_pixel") is not None:
            self._trace_pixel(self.debug_config["trace_pixel"], opts)
        if stochastic_pixel_count is None:
            return image
        return _sample_pixels(image, int(stochastic_pixel_count))

    def _trace_pixel(self, pixel, opts: RunOptions) -> None:
        """Print ``TRACE_PY: <quantity> <value>`` lines for pixel (slow, fast): the values the
        C program's loop variables hold after that pixel (``nanobragg_jax.trace``), recomputed
        in float64 with the kernel that rendered the image.  A pixel off the detector prints
        nothing, as the C program's ``-printout_pixel`` does."""
        import jax
        import numpy as np

        from nanobragg_jax import trace

        s, f = (int(x) for x in list(pixel)[:2])
        with jax.enable_x64(True):
            built = self.build(run=opts, dtype=np.float64)
            setup, params = built.setup, built.params
            if not (0 <= s < setup.spixels and 0 <= f < setup.fpixels):
                return
            exp = type("TracedRun", (), {"setup": setup, "params": params})()
            det = trace.pixel_details(exp, [(s, f)])
            v = trace._c_values(det, 0, setup)
        photons = float(det["photons"][0])
        pos, h, h0 = (np.asarray(x) for x in (v["pos"], v["hkl"], v["hkl0"]))
        lines = [("pixel_slow_fast", f"{s} {f}"),
                 ("position_m", "%.10g %.10g %.10g" % tuple(pos)),
                 ("hkl", "%.8f %.8f %.8f" % tuple(h)),
                 ("nearest_hkl", "%d %d %d" % tuple(h0)),
                 ("F_cell", "%.10g" % v["F_cell"]),
                 ("F_latt", "%.10g" % v["F_latt"]),
                 ("intensity_sum", "%.10g" % v["I"]),
                 ("steps", "%d" % setup.steps),
                 ("r_e_squared_m2", "%.10g" % R_E_SQR),
                 ("fluence_photons_per_m2", "%.10g" % float(params.fluence)),
                 ("polar", "%.10g" % v["polar"]),
                 ("omega_sr", "%.10g" % v["omega"]),
                 ("capture_fraction", "%.10g" % v["capture"]),
                 ("photons", "%.10g" % photons)]
        for key, value in lines:
            print(f"TRACE_PY: {key} {value}")

    def compute_statistics(self, float_image) -> dict:
        """The C program's image statistics over the rendered pixels (ROI, unmasked):
        ``max_I`` and its pixel (``max_I_fast``, ``max_I_slow``) and sub-pixel position
        (``max_I_subpixel_fast/slow``, m), ``mean``, ``RMS`` = sqrt(Σv²/(N−1)), ``RMSD``
        from the mean, and ``N`` — computed by ``nanobragg_jax.report.image_statistics``."""
        from types import SimpleNamespace

        import jax
        import numpy as np

        from nanobragg_jax import report

        from ._arrays import to_numpy

        image = np.asarray(to_numpy(float_image))
        with jax.enable_x64(True):
            built = self.build(dtype=np.float64)
        setup, params = built.setup, built.params
        if image.shape != (setup.spixels, setup.fpixels):
            # an image of another size (the port allows it): its own pixel grid, the ROI clipped
            # to it, no mask
            setup = SimpleNamespace(spixels=image.shape[0], fpixels=image.shape[1], roi=setup.roi,
                                    oversample=setup.oversample, has_mask=False)
        st = report.image_statistics(image, SimpleNamespace(setup=setup, params=params))
        if st.n_rendered == 0:
            return {"max_I": 0.0, "max_I_fast": 0, "max_I_slow": 0, "max_I_subpixel_fast": 0.0,
                    "max_I_subpixel_slow": 0.0, "mean": 0.0, "RMS": 0.0, "RMSD": 0.0, "N": 0}
        slow, fast = st.max_pixel if st.max_pixel is not None else (0, 0)
        return {"max_I": st.max_I, "max_I_fast": int(fast), "max_I_slow": int(slow),
                "max_I_subpixel_fast": st.max_I_x, "max_I_subpixel_slow": st.max_I_y, "mean": st.mean,
                "RMS": st.rms, "RMSD": st.rmsd, "N": st.n_rendered}

    # -- the port's beam attributes ----------------------------------------------------------
    @property
    def wavelength(self):
        """Wavelength (Å)."""
        return self._evaluate(lambda b, dt: jnp.asarray(b.wavelength_A, dt), (self.beam_config,))

    @wavelength.setter
    def wavelength(self, value) -> None:  # the port's scripts set it in place (Å)
        self.beam_config.wavelength_A = value

    @property
    def fluence(self):
        """Fluence (photons/m²)."""
        return self._evaluate(lambda b, dt: jnp.asarray(b.fluence, dt), (self.beam_config,))

    @property
    def kahn_factor(self):
        """Kahn polarisation factor (0 with ``nopolar``, as in the port)."""
        return self._evaluate(lambda b, dt: jnp.asarray(0.0 if b.nopolar else b.polarization_factor, dt),
                              (self.beam_config,))

    @property
    def r_e_sqr(self):
        """Classical electron radius squared (m²)."""
        return self._evaluate(lambda dt: jnp.asarray(R_E_SQR, dt), ())

    @property
    def incident_beam_direction(self):
        """Unit vector of photon propagation."""
        return self.detector.beam_vector
