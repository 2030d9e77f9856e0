"""``Crystal``: the port's crystal model (unit cell, orientation, structure factors).

Every vector and the volume are computed by the core (``nanobragg_jax.geometry.crystal``)
from the current ``config``: cell → reciprocal vectors in the C program's standard
setting → misset rotation → real vectors.  Units as in the port: real vectors Å,
reciprocal vectors Å⁻¹, volume Å³.  Results are JAX arrays, or torch tensors when the
crystal was created with a torch device/dtype or its config holds torch tensors.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nanobragg_jax import physics
from nanobragg_jax.geometry import crystal as crystal_geo

from .._common import Component, evaluate
from .._translate import HKLTable, RunOptions, build
from .._values import concrete_float
from ..config import BeamConfig, CrystalConfig, DetectorConfig

__all__ = ["Crystal"]

_ANGSTROM = 1e-10


@partial(jax.jit, static_argnums=0)
def _cell_tensors(setup, params) -> dict:
    lat = crystal_geo.lattice(setup, params)
    return {"a": lat.real[0], "b": lat.real[1], "c": lat.real[2],
            "a_star": lat.reciprocal[0], "b_star": lat.reciprocal[1], "c_star": lat.reciprocal[2],
            "V": lat.volume}


@partial(jax.jit, static_argnums=0)
def _rotated_vectors(setup, params):
    lat = crystal_geo.lattice(setup, params)
    real = crystal_geo.rotated_real_vectors(setup, params, lat.real) / _ANGSTROM
    # Rotations are orthogonal: the same rotations carry the reciprocal vectors.
    recip = crystal_geo.rotated_real_vectors(setup, params, lat.reciprocal) / _ANGSTROM
    return ((real[..., 0, :], real[..., 1, :], real[..., 2, :]),
            (recip[..., 0, :], recip[..., 1, :], recip[..., 2, :]))


def _plain(x):
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


class Crystal(Component):
    """Unit cell, orientation and structure factors (the port's ``models.crystal.Crystal``).

    Args:
      config: the crystal's configuration (default ``CrystalConfig()``).
      beam_config: kept for the port's signature; ``Simulator`` uses it when it is given
        no beam config of its own.
      device: where results are computed — a string ("cpu", "cuda", "gpu:1"), a JAX
        device, or a torch device.
      dtype: floating dtype of results — a JAX/NumPy dtype or a torch dtype.  None means
        JAX's default float (float64 with x64 enabled).

    ``Crystal(config, device, dtype)`` (without a beam config) is accepted too.
    """

    def __init__(self, config: Optional[CrystalConfig] = None, beam_config: Optional[BeamConfig] = None,
                 device: Any = None, dtype: Any = None):
        if beam_config is not None and not isinstance(beam_config, BeamConfig):
            if dtype is not None:
                raise TypeError("Crystal(config, beam_config, device, dtype): beam_config must be a BeamConfig")
            beam_config, device, dtype = None, beam_config, device
        self.config = config if config is not None else CrystalConfig()
        self.beam_config = beam_config
        self._clip_sample_to_beam()
        self._draw_random_misset()
        self._init_device(device, dtype)
        self.hkl_data: Any = None  # (h_range, k_range, l_range) grid, F(h,k,l) at [h-h_min, …]
        self.hkl_metadata: Optional[dict] = None
        self._interpolate: Optional[bool] = None
        self._interpolation_warning_shown = False  # the C program warns once per run

    def _draw_random_misset(self) -> None:
        """With ``misset_random`` and a seed, record the drawn orientation in
        ``config.misset_deg`` (as the port does); the draw is the core's
        (``nanobragg_jax.rng.random_misset_angles``, the C program's ``-misset random``)."""
        c = self.config
        if not c.misset_random or c.misset_seed is None:
            return
        from nanobragg_jax import rng

        angles = rng.random_misset_angles(rng.seed_from_cli(int(c.misset_seed)))
        c.misset_deg = tuple(float(np.degrees(a)) for a in angles)

    def _clip_sample_to_beam(self) -> None:
        """The C program's (and the port's) clipping of the sample's height and width by the
        beam size (informational: compat's crystal size is ``N_cells``)."""
        beamsize_mm = _plain(getattr(self.beam_config, "beamsize_mm", 0.0))
        if not beamsize_mm or beamsize_mm <= 0:
            return
        beamsize_m = beamsize_mm / 1000.0
        for name in ("sample_y", "sample_z"):
            value = _plain(getattr(self.config, name, None))
            if value is not None and beamsize_m < value:
                print(f"Warning: Clipping {name} from {value:.6e} m to beamsize {beamsize_m:.6e} m")
                setattr(self.config, name, beamsize_m)

    # -- cell parameters (read from the config every time) ------------------------
    @property
    def cell_a(self):
        return self._value(self.config.cell_a)

    @cell_a.setter
    def cell_a(self, value):  # the port's in-place refinement update: it goes into the config
        self.config.cell_a = value

    @property
    def cell_b(self):
        return self._value(self.config.cell_b)

    @cell_b.setter
    def cell_b(self, value):  # the port's in-place refinement update: it goes into the config
        self.config.cell_b = value

    @property
    def cell_c(self):
        return self._value(self.config.cell_c)

    @cell_c.setter
    def cell_c(self, value):  # the port's in-place refinement update: it goes into the config
        self.config.cell_c = value

    @property
    def cell_alpha(self):
        return self._value(self.config.cell_alpha)

    @cell_alpha.setter
    def cell_alpha(self, value):  # the port's in-place refinement update: it goes into the config
        self.config.cell_alpha = value

    @property
    def cell_beta(self):
        return self._value(self.config.cell_beta)

    @cell_beta.setter
    def cell_beta(self, value):  # the port's in-place refinement update: it goes into the config
        self.config.cell_beta = value

    @property
    def cell_gamma(self):
        return self._value(self.config.cell_gamma)

    @cell_gamma.setter
    def cell_gamma(self, value):  # the port's in-place refinement update: it goes into the config
        self.config.cell_gamma = value

    @property
    def N_cells_a(self):
        return self._value(self.config.N_cells[0])

    @property
    def N_cells_b(self):
        return self._value(self.config.N_cells[1])

    @property
    def N_cells_c(self):
        return self._value(self.config.N_cells[2])

    def _value(self, x):
        return evaluate(lambda v, dt: jnp.asarray(v, dt), (x,), dtype=self._np_dtype,
                        torch_io=self._torch_io, device=self._device_arg)

    # -- interpolation switch -------------------------------------------------------
    @property
    def interpolate(self) -> bool:
        """Tricubic F interpolation; by default the C rule: on when any N ≤ 2."""
        if self._interpolate is not None:
            return self._interpolate
        ns = [concrete_float(n) for n in self.config.N_cells]
        return any(n is not None and n <= 2 for n in ns)

    @interpolate.setter
    def interpolate(self, value: Optional[bool]) -> None:
        self._interpolate = None if value is None else bool(value)

    # -- structure factors ------------------------------------------------------------
    def load_hkl(self, hkl_path: str, write_cache: bool = True) -> None:
        """Read an ``h k l F`` text file (columns after F ignored) into ``hkl_data``.

        Reflections missing from the file get ``config.default_F``, as in the C program;
        ``write_cache`` writes the C program's ``Fdump.bin`` into the working directory.
        """
        from nanobragg_jax.io import hkl as hkl_io

        default_F = concrete_float(self.config.default_F) or 0.0
        data = hkl_io.read_hkl(hkl_path, default_F=default_F)
        if write_cache:
            try:
                hkl_io.write_fdump(os.path.join(os.getcwd(), "Fdump.bin"), data)
            except OSError:
                pass
        self._set_hkl(data)

    def load_fdump(self, path: str) -> None:
        """Read the C program's binary ``Fdump.bin`` cache into ``hkl_data``."""
        from nanobragg_jax.io import hkl as hkl_io

        self._set_hkl(hkl_io.read_fdump(path))

    def _set_hkl(self, data) -> None:
        grid = np.asarray(data.grid)[:-1, :-1, :-1]  # drop the C padding layer
        self.hkl_metadata = {
            "h_min": data.h_min, "h_max": data.h_max, "k_min": data.k_min, "k_max": data.k_max,
            "l_min": data.l_min, "l_max": data.l_max, "h_range": data.h_max - data.h_min + 1,
            "k_range": data.k_max - data.k_min + 1, "l_range": data.l_max - data.l_min + 1,
            "count": data.count,
        }
        from .._arrays import torch_by_default

        if self._torch_io or torch_by_default():
            import torch

            self.hkl_data = torch.as_tensor(grid, dtype=self._torch_dtype())
        else:
            self.hkl_data = grid

    def _torch_dtype(self):
        import torch

        name = np.dtype(self._np_dtype).name if self._np_dtype is not None else str(torch.get_default_dtype())[6:]
        return getattr(torch, name)

    def _hkl_table(self, hkl_data) -> Optional[HKLTable]:
        if hkl_data is None or self.hkl_metadata is None:
            return None
        m = self.hkl_metadata
        return HKLTable(data=hkl_data, mins=(m["h_min"], m["k_min"], m["l_min"]),
                        maxs=(m["h_max"], m["k_max"], m["l_max"]), count=int(m.get("count", 1)) or 1)

    def get_structure_factor(self, h, k, l):  # noqa: E741
        """|F| at (h, k, l): nearest reflection (ceil(x − ½), default_F outside the grid) or,
        with ``interpolate``, tricubic interpolation — as the C program: the first point
        (in C order) whose 4×4×4 neighbourhood leaves the grid switches interpolation off
        for good (``self.interpolate`` becomes False), and it and every later point get
        the nearest reflection."""
        interpolate = self.interpolate
        first_out = None
        if interpolate and self.hkl_metadata is not None:
            first_out = self._first_out_of_range(h, k, l)
            if first_out is not None:
                self._switch_interpolation_off(h, k, l, first_out)

        def fn(c, hkl_data, h, k, l, dt):  # noqa: E741
            s, p, q = self._lookup_inputs(c, hkl_data, h, k, l, dt, interpolate)
            near = physics.structure_factor_nearest(q, p.F_grid, s.hkl_min, s.hkl_max, p.default_F, s.has_hkl)
            if not (s.has_hkl and s.interpolate):
                return near
            tri = physics.structure_factor_tricubic(q, p.F_grid, s.hkl_min)
            if first_out is None:
                # no number to order by (traced): per point, as if each were the first
                return jnp.where(physics.interpolation_out_of_range(q, s.hkl_min, s.hkl_max), near, tri)
            order = jnp.arange(near.size).reshape(near.shape)
            return jnp.where(order < first_out, tri, near)

        return self._evaluate(fn, (self.config, self.hkl_data, h, k, l))

    def _lookup_inputs(self, c, hkl_data, h, k, l, dt, interpolate: bool):  # noqa: E741
        """(Setup, Params, Miller points (..., 3)) for looking up F at (h, k, l) on the core."""
        built = build(c, DetectorConfig(), BeamConfig(), dtype=dt, hkl=self._hkl_table(hkl_data),
                      interpolate=interpolate, run=RunOptions(oversample=1), device=self._jax_device)
        q = jnp.stack(jnp.broadcast_arrays(jnp.asarray(h, dt), jnp.asarray(k, dt), jnp.asarray(l, dt)), axis=-1)
        return built.setup, built.params, q

    def _tricubic_interpolation(self, h, k, l):  # noqa: E741
        """The C program's tricubic step on its own (the ``if(interpolate)`` block of its
        pixel loop), point by point: the tricubic F where the 4×4×4 neighbourhood passes
        C's range test, ``default_F`` where it does not.  A failing point switches
        interpolation off for later ``get_structure_factor`` calls and prints C's warning
        (once per crystal); the nearest-reflection fallback that C applies after this step
        is ``get_structure_factor``'s.  The output has the shape of ``h``."""
        if self.hkl_metadata is None:
            raise ValueError("_tricubic_interpolation needs structure factors: call load_hkl first")
        first_out = self._first_out_of_range(h, k, l)
        if first_out is not None:
            self._switch_interpolation_off(h, k, l, first_out)

        def fn(c, hkl_data, h, k, l, dt):  # noqa: E741
            s, p, q = self._lookup_inputs(c, hkl_data, h, k, l, dt, True)
            tri = physics.structure_factor_tricubic(q, p.F_grid, s.hkl_min)
            out = physics.interpolation_out_of_range(q, s.hkl_min, s.hkl_max)
            return jnp.where(out, jnp.asarray(p.default_F, dt), tri)

        return self._evaluate(fn, (self.config, self.hkl_data, h, k, l))

    def _switch_interpolation_off(self, h, k, l, index: int) -> None:  # noqa: E741
        """C: ``interpolate = 0`` for the rest of the run, with its warning printed once."""
        self._interpolate = False
        if self._interpolation_warning_shown:
            return
        self._interpolation_warning_shown = True
        from .._values import concrete

        q = np.stack(np.broadcast_arrays(*[np.asarray(concrete(v), np.float64) for v in (h, k, l)]),
                     axis=-1).reshape(-1, 3)[index]
        h0, k0, l0 = (int(np.ceil(x - 0.5)) for x in q)
        # the C program's two lines
        print("WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: "
              f"{q[0]:g},{q[1]:g},{q[2]:g},{h0},{k0},{l0} ")
        print("WARNING: further warnings will not be printed! ", flush=True)

    def _first_out_of_range(self, h, k, l):  # noqa: E741
        """Flat index of the first query whose tricubic neighbourhood leaves the grid, None if
        none does (or the values are traced)."""
        from .._values import concrete

        vals = [concrete(v) for v in (h, k, l)]
        if any(v is None for v in vals):
            return None
        q = np.stack(np.broadcast_arrays(*[np.asarray(v, np.float64) for v in vals]), axis=-1)
        m = self.hkl_metadata
        out = np.asarray(physics.interpolation_out_of_range(
            jnp.asarray(q), (m["h_min"], m["k_min"], m["l_min"]), (m["h_max"], m["k_max"], m["l_max"])))
        hits = np.flatnonzero(out.reshape(-1))
        return int(hits[0]) if hits.size else None

    # -- lattice vectors ----------------------------------------------------------------
    def _evaluate(self, fn, state):
        return evaluate(fn, state, dtype=self._np_dtype, torch_io=self._torch_io, device=self._device_arg)

    def _built(self, c, dt, detector_config=None):
        return build(c, detector_config or DetectorConfig(), self.beam_config or BeamConfig(), dtype=dt,
                     run=RunOptions(oversample=1), device=self._jax_device)

    def compute_cell_tensors(self) -> dict:
        """Real (Å) and reciprocal (Å⁻¹) vectors after the misset rotation, and the volume (Å³)."""

        def fn(c, dt):
            b = self._built(c, dt)
            return _cell_tensors(b.setup, b.params)

        return self._evaluate(fn, (self.config,))

    @property
    def a(self):
        """Real-space vector a (Å)."""
        return self.compute_cell_tensors()["a"]

    @property
    def b(self):
        """Real-space vector b (Å)."""
        return self.compute_cell_tensors()["b"]

    @property
    def c(self):
        """Real-space vector c (Å)."""
        return self.compute_cell_tensors()["c"]

    @property
    def a_star(self):
        """Reciprocal vector a* (Å⁻¹)."""
        return self.compute_cell_tensors()["a_star"]

    @property
    def b_star(self):
        """Reciprocal vector b* (Å⁻¹)."""
        return self.compute_cell_tensors()["b_star"]

    @property
    def c_star(self):
        """Reciprocal vector c* (Å⁻¹)."""
        return self.compute_cell_tensors()["c_star"]

    @property
    def V(self):
        """Unit-cell volume (Å³)."""
        return self.compute_cell_tensors()["V"]

    @property
    def volume(self):
        """Unit-cell volume (Å³); alias of ``V``."""
        return self.V

    def get_rotated_real_vectors(self, config: Optional[CrystalConfig] = None, detector_config=None):
        """Vectors after the φ rotation and each mosaic domain's rotation.

        Returns ``((a, b, c), (a*, b*, c*))``, each of shape (phi_steps, mosaic_domains, 3),
        real vectors in Å and reciprocal vectors in Å⁻¹.  ``config`` (default: this
        crystal's) supplies the φ and mosaic settings; the spindle axis defaults to the
        convention of ``detector_config`` (MOSFLM when None).  Mosaic domains are the C
        program's draws for ``mosaic_seed``.
        """
        cfg = config if config is not None else self.config

        def fn(c, dt):
            b = self._built(c, dt, detector_config)
            return _rotated_vectors(b.setup, b.params)

        return self._evaluate(fn, (cfg,))

    def get_rotated_real_vectors_for_batch(self, config: Optional[CrystalConfig], slow_indices=None,
                                           fast_indices=None):
        """As ``get_rotated_real_vectors`` (the rotations do not depend on the pixel)."""
        return self.get_rotated_real_vectors(config)
