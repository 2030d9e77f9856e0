"""The C program's count/range/step rules under the port's names
(``nanobrag_torch.utils.auto_selection``), decided by the core's own rules
(``nanobragg_jax.experiment``): divergence and dispersion by ``_auto_steps``, sensor
layers by ``_thickness``.  Where the port's rule differs (a count alone: the C step is
range/count, not range/(count−1); a thickness alone: 2 layers of half the thickness),
the C program's is kept (docs/migration.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from nanobragg_jax import experiment as _exp

__all__ = ["SamplingParams", "auto_select_sampling", "auto_select_divergence", "auto_select_dispersion",
           "auto_select_thickness", "generate_sources_from_divergence_dispersion"]


@dataclass
class SamplingParams:
    """A resolved sampling: ``count`` points spanning ``range`` in steps of ``step``."""

    count: int
    range: float
    step: float


def _c_values(count, range_val, step):
    """The port's None (not given) as the C program's unset values (-1 / 0)."""
    return (0 if count is None else int(count), -1.0 if range_val is None else float(range_val),
            -1.0 if step is None else float(step))


def auto_select_sampling(count: Optional[int] = None, range_val: Optional[float] = None,
                         step: Optional[float] = None, default_range: float = 1.0,
                         parameter_type: str = "angle") -> SamplingParams:
    """Resolve (count, range, step) as the C program does for divergence/dispersion
    (``parameter_type="thickness"`` applies its sensor-layer rule instead)."""
    if parameter_type == "thickness":
        return auto_select_thickness(count, range_val, step)
    n, r, s = _c_values(count, range_val, step)
    n, r, s, _ = _exp._auto_steps(n, r, s, steps_only_range=float(default_range))
    return SamplingParams(int(n), float(r), float(s))


def auto_select_divergence(hdivsteps: Optional[int] = None, hdivrange: Optional[float] = None,
                           hdivstep: Optional[float] = None, vdivsteps: Optional[int] = None,
                           vdivrange: Optional[float] = None, vdivstep: Optional[float] = None):
    """``(horizontal, vertical)`` SamplingParams (radians)."""
    return (auto_select_sampling(hdivsteps, hdivrange, hdivstep),
            auto_select_sampling(vdivsteps, vdivrange, vdivstep))


def auto_select_dispersion(dispsteps: Optional[int] = None, dispersion: Optional[float] = None,
                           dispstep: Optional[float] = None) -> SamplingParams:
    """SamplingParams of the spectral spread (fraction of λ)."""
    return auto_select_sampling(dispsteps, dispersion, dispstep)


def auto_select_thickness(thicksteps: Optional[int] = None, detector_thick: Optional[float] = None,
                          detector_thickstep: Optional[float] = None) -> SamplingParams:
    """SamplingParams of the sensor layers (metres), the C program's ``-thicksteps`` rule."""
    n, r, s = _c_values(thicksteps, detector_thick, detector_thickstep)
    st = SimpleNamespace(detector_thicksteps=n, detector_thick=r, detector_thickstep=s, detector_mu=-1.0)
    _exp._thickness(st)
    return SamplingParams(int(st.detector_thicksteps), float(st.detector_thick), float(st.detector_thickstep))


def generate_sources_from_divergence_dispersion(hdiv_params: SamplingParams, vdiv_params: SamplingParams,
                                                disp_params: SamplingParams, central_wavelength_m: float,
                                                source_distance_m: float = 10.0, beam_direction: Any = None,
                                                polarization_axis: Any = None, round_div: bool = True,
                                                dtype: Any = None):
    """``(directions (N, 3), weights (N,), wavelengths (N,) m)`` of the C program's
    generated sources, computed by the core (``nanobragg_jax.geometry.beam.sources``)
    for the same flags (MOSFLM beam and polarisation axes)."""
    from nanobragg_jax import from_cli_args
    from nanobragg_jax.geometry import beam as _beam

    from .._arrays import as_output

    rad_to_mrad = 1000.0
    argv = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1", "-detpixels", "1",
            "-lambda", repr(float(central_wavelength_m) * 1e10),
            "-hdivsteps", str(int(hdiv_params.count)), "-hdivrange", repr(hdiv_params.range * rad_to_mrad),
            "-vdivsteps", str(int(vdiv_params.count)), "-vdivrange", repr(vdiv_params.range * rad_to_mrad),
            "-dispsteps", str(int(disp_params.count)), "-dispersion", repr(disp_params.range * 100.0),
            "-round_div" if round_div else "-square_div"]
    if hdiv_params.step > 0:
        argv += ["-hdivstep", repr(hdiv_params.step * rad_to_mrad)]
    if vdiv_params.step > 0:
        argv += ["-vdivstep", repr(vdiv_params.step * rad_to_mrad)]
    import jax

    with jax.enable_x64(True):  # the C program's doubles, whatever JAX's default
        exp = from_cli_args(argv)
        src = _beam.sources(exp.setup, exp.params)
    dirs = -np.asarray(src.incident, np.float64).reshape(-1, 3)  # sample → source, as the port
    lams = np.asarray(src.wavelength, np.float64).reshape(-1)
    weights = np.ones(len(lams))
    return as_output(dirs, dtype), as_output(weights, dtype), as_output(lams, dtype)
