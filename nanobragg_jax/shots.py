"""Many still shots at once: batched, chunked, sharded over devices and hosts.

A *shot* is one still image of a crystal in its own orientation, lit by its own
pulse.  Every shot of a batch shares the detector, the structure factors and
the static ``Setup``; what changes from shot to shot is a ``Shots`` pytree whose
leaves have a leading shot axis:

* ``recip_matrix`` (n, 3, 3) Å⁻¹ — columns a*, b*, c* in the lab frame
  (``Setup.orientation`` becomes "matrix"; the base misset is folded into the
  base matrix B, so A*ᵢ = Uᵢ·B);
* ``wavelengths``, ``weights`` (n, S) — the pulse's spectrum, rendered with
  weighted sources along the beam (``spectra.with_spectrum``; image =
  Σ wᵢ·image(λᵢ)/Σ wᵢ);
* ``fluence`` (n,) photons/m² — the shot's scale;
* optional ``N`` (n, 3) cells and ``mosaic_spread`` (n,) deg (the latter scales
  the base setup's fixed mosaic draws, so the base needs ``-mosaic_domains`` > 1).

``simulate_shots(setup, params, shots)`` returns (n, spixels, fpixels); with
``panels=`` (a ``panels.PanelStack`` of one shape) every shot renders every panel
(``panels.simulate_panels``' renderer) and the result is (n, n_panels, n_slow,
n_fast).  Inside,
each device gets an equal share of the shots (``shard_map`` over a 1-D
``Mesh`` of the local devices, inputs placed with a ``NamedSharding``); a device
walks its share in chunks with ``lax.map`` and renders the shots of a chunk
together with ``vmap`` — memory is bounded by chunk × tile, both chosen from a
budget.  It compiles once per (setup, batch shape, chunk, device count).

Across hosts (``jax.distributed``) each process renders the shots
``process_shot_indices`` gives it on its own devices; see docs/shots.md.

Ground truth: ``random_shots`` returns the ``Shots`` batch (with the rotation
``U``), which is exactly what produced the images.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from . import kernel, spectra
from .config import Params, Setup
from .geometry import crystal as crystal_geo

if TYPE_CHECKING:  # annotations only: panels imports kernel machinery this module does not need
    from .panels import PanelStack

# Working-memory budget of one device's chunk (bytes) when none is given.
DEFAULT_MEMORY_BUDGET = 256 << 20
# Rough bytes of fast-path working memory per (shot, pixel, source row) of a tile.
_BYTES_PER_SUBPATH = 96


class Shots(NamedTuple):
    """Per-shot values (leading axis: shot).  ``N``/``mosaic_spread`` None = the base value.

    ``U`` is ground truth only (the kernel uses ``recip_matrix``); it may be None.
    """

    recip_matrix: Array  # (n, 3, 3) Å⁻¹, columns a*, b*, c*
    wavelengths: Array  # (n, S) Å
    weights: Array  # (n, S)
    fluence: Array  # (n,) photons/m²
    N: Optional[Array] = None  # (n, 3)
    mosaic_spread: Optional[Array] = None  # (n,) deg
    U: Optional[Array] = None  # (n, 3, 3) rotation, ground truth

    @property
    def n_shots(self) -> int:
        return int(np.shape(self.fluence)[0])

    @property
    def n_sources(self) -> int:
        return int(np.shape(self.wavelengths)[1])

    def take(self, idx) -> "Shots":
        """The shots ``idx`` (an int, slice or index array) as numpy arrays."""
        return Shots(*[None if v is None else np.asarray(v)[idx] for v in self])


# -------------------------------------------------------------------------------------------
# Orientations and batches
# -------------------------------------------------------------------------------------------


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (…, 3, 3) of unit quaternions (…, 4) = (w, x, y, z)."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def shot_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of shot ``index``: depends only on (seed, index, stream)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), int(stream)])


def random_rotations(seed: int, indices: Union[int, Sequence[int]]) -> np.ndarray:
    """Rotations uniform on SO(3) (Haar measure), one per shot index: (n, 3, 3).

    A unit quaternion with four independent standard-normal components is
    uniform on S³, hence its rotation is uniform on SO(3).  Shot i's rotation
    depends only on (seed, i), so any subset of a dataset can be regenerated.
    """
    idx = range(indices) if isinstance(indices, int) else indices
    q = np.array([shot_rng(seed, i, 0).standard_normal(4) for i in idx]).reshape(-1, 4)
    return quaternion_to_matrix(q)


def base_reciprocal(setup: Setup, params: Params) -> np.ndarray:
    """B: the base crystal's reciprocal matrix (columns a*, b*, c*; Å⁻¹), misset included."""
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        lat = jax.jit(crystal_geo.lattice, static_argnums=0)(setup, p64)
        return np.asarray(lat.reciprocal).T


def random_shots(setup: Setup, params: Params, n_shots: int, seed: int, *, start: int = 0,
                 spectrum: Union[str, spectra.Spectrum] = "mono", n_channels: int = 32,
                 bandwidth: float = 2e-3, n_modes: int = 20, mode_width: float = 1e-4,
                 jitter: float = 0.0, fluence_cv: float = 0.0,
                 orientations: Optional[np.ndarray] = None,
                 indices: Optional[Sequence[int]] = None) -> Shots:
    """Shots ``start … start+n_shots−1`` (or the given ``indices``) of a seeded dataset.

    Shot i's orientation, spectrum and fluence depend only on (seed, i).

    Args:
      setup, params: the base experiment (its fluence, wavelength and crystal).
      spectrum: "mono" (the base wavelength), "sase" (``spectra.sase_spectrum``
        around it with ``n_channels``, ``bandwidth``, ``n_modes``, ``mode_width``,
        ``jitter``), or a fixed ``spectra.Spectrum`` for every shot.
      fluence_cv: relative r.m.s. of a log-normal fluence jitter (0 = none).
      orientations: given rotations U (n, 3, 3) instead of random ones.
    Returns:
      ``Shots`` (numpy arrays, float64) including the ground-truth ``U``.
    """
    idx = list(range(start, start + n_shots)) if indices is None else [int(i) for i in indices]
    n_shots = len(idx)
    U = random_rotations(seed, idx) if orientations is None else np.asarray(orientations, np.float64)
    if U.shape != (n_shots, 3, 3):
        raise ValueError(f"orientations: expected shape {(n_shots, 3, 3)}, got {U.shape}")
    B = base_reciprocal(setup, params)
    lam0 = float(np.asarray(params.wavelength))
    if isinstance(spectrum, spectra.Spectrum):
        spec = spectra.along_beam(spectrum, "random_shots")
        lam = np.tile(spec.wavelengths, (n_shots, 1))
        w = np.tile(spec.weights, (n_shots, 1))
    elif spectrum == "mono":
        lam, w = np.full((n_shots, 1), lam0), np.ones((n_shots, 1))
    elif spectrum == "sase":
        specs = [spectra.sase_spectrum(shot_rng(seed, i, 1), lam0, bandwidth, n_channels, n_modes,
                                       mode_width, jitter) for i in idx]
        lam = np.array([s.wavelengths for s in specs])
        w = np.array([s.weights for s in specs])
    else:
        raise ValueError(f"spectrum: 'mono', 'sase' or a Spectrum, not {spectrum!r}")
    fluence = np.full(n_shots, float(np.asarray(params.fluence)))
    if fluence_cv > 0:
        z = np.array([shot_rng(seed, i, 2).standard_normal() for i in idx])
        s2 = np.log1p(fluence_cv ** 2)
        fluence = fluence * np.exp(np.sqrt(s2) * z - s2 / 2)
    return Shots(recip_matrix=np.einsum("nij,jk->nik", U, B), wavelengths=lam, weights=w,
                 fluence=fluence, U=U)


def shot_setup(setup: Setup, n_sources: int) -> Setup:
    """The static setup every shot of a batch runs: matrix orientation, S weighted beam sources."""
    return dataclasses.replace(spectra.spectrum_setup(setup, n_sources), orientation="matrix")


def shot_params(params: Params, shot: Shots) -> Params:
    """The Params of one shot (``shot`` holds one shot's values, no leading axis)."""
    dtype = jnp.result_type(params.wavelength)
    S = jnp.shape(shot.wavelengths)[0]
    beam = jnp.asarray(params.beam_vector, dtype)
    beam = beam / jnp.sqrt(jnp.sum(beam * beam))
    changes = dict(
        recip_matrix=jnp.asarray(shot.recip_matrix, dtype),
        misset=jnp.zeros(3, dtype),
        source_dirs=jnp.broadcast_to(-beam, (S, 3)),
        source_wavelengths=jnp.asarray(shot.wavelengths, dtype),
        source_weights=jnp.asarray(shot.weights, dtype),
        fluence=jnp.asarray(shot.fluence, dtype),
    )
    if shot.N is not None:
        changes["N"] = jnp.asarray(shot.N, dtype)
    if shot.mosaic_spread is not None:
        changes["mosaic_spread"] = jnp.asarray(shot.mosaic_spread, dtype)
    return params.replace(**changes)


def single_shot(setup: Setup, params: Params, shots: Shots, i: int) -> tuple[Setup, Params]:
    """(setup, params) that ``simulate`` renders as shot ``i`` of ``shots`` (for checks)."""
    one = Shots(*[None if v is None else np.asarray(v)[i] for v in shots])
    return shot_setup(setup, shots.n_sources), shot_params(params, one)


# -------------------------------------------------------------------------------------------
# Rendering
# -------------------------------------------------------------------------------------------


def _kernel_shots(shots: Shots) -> Shots:
    """The leaves the renderer needs (U is ground truth only)."""
    return shots._replace(U=None)


def chunk_tile(setup: Setup, chunk: int) -> int:
    """Pixels per tile when ``chunk`` shots share a tile step: the kernel's tile / chunk (≥ 256)."""
    base_tile = kernel.tile_pixels(dataclasses.replace(setup, tile_pixels=0))
    return max(kernel.TILE_QUANTUM, base_tile // max(1, chunk))


def choose_chunk(setup: Setup, n_per_device: int, memory_budget: int, itemsize: int = 8,
                 n_panels: int = 1) -> tuple[int, int]:
    """(shots per chunk, pixels per tile) for one device within ``memory_budget`` bytes.

    The chunk's images (3 copies: result, padding, output; ``n_panels`` panels of
    the setup's size each) and its tile working set (chunk × tile × rows × ~96 B)
    must fit; the tile is the kernel's own choice divided among the chunk's
    shots (≥ 256 pixels; with panels, a tile holds the same pixels of every panel).
    """
    rows = setup.thicksteps * setup.n_subpixels * setup.n_sources
    n_pix = setup.spixels * setup.fpixels * max(1, int(n_panels))
    best = (1, chunk_tile(setup, 1))
    for c in range(1, max(1, n_per_device) + 1):
        tile = chunk_tile(setup, c)
        need = c * (3 * n_pix * itemsize + min(tile, n_pix) * rows * _BYTES_PER_SUBPATH)
        if need > memory_budget:
            break
        best = (c, tile)
    return best


@partial(jax.jit, static_argnames=("setup", "chunk", "n_dev"))
def _render(setup: Setup, params: Params, shots: Shots, chunk: int, n_dev: int, panels=None) -> Array:
    """(n, S, F) images — (n, P, S, F) with panels — of a padded batch (n a multiple of chunk·n_dev)."""
    from .panels import simulate_panels
    from .simulate import _simulate  # the jitted single-image renderer (one device)

    def one(shot):
        if panels is None:
            return _simulate(setup, kernel.build_context(setup, shot_params(params, shot)), 1)
        return simulate_panels(setup, shot_params(params, shot), panels, devices=1)

    def local(params_, shots_):
        n = shots_.fluence.shape[0]
        grouped = jax.tree_util.tree_map(lambda x: x.reshape((n // chunk, chunk) + x.shape[1:]), shots_)
        out = jax.lax.map(jax.vmap(one), grouped)
        return out.reshape((n,) + out.shape[2:])

    if n_dev == 1:
        return local(params, shots)
    from jax.sharding import Mesh, PartitionSpec as PS

    mesh = Mesh(np.asarray(jax.local_devices()[:n_dev]), ("shots",))
    fn = jax.shard_map(lambda s: local(params, s), mesh=mesh, in_specs=(PS("shots"),),
                       out_specs=PS("shots"), check_vma=False)
    return fn(shots)


def simulate_shots(setup: Setup, params: Params, shots: Shots, *, devices: Optional[int] = None,
                   chunk: Optional[int] = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                   panels: Optional["PanelStack"] = None) -> Array:
    """Render every shot: (n_shots, spixels, fpixels), photons per pixel.

    Args:
      setup, params: the base experiment (detector, structure factors, crystal
        size, mosaic draws, …); its source list and orientation are replaced per
        shot (see the module docstring).
      shots: a ``Shots`` batch (numpy or JAX arrays; leading axis = shot).
      devices: how many local devices share the shot axis (default: all of
        ``jax.local_devices()``).
      chunk: shots rendered together per device step (default: from ``memory_budget``).
      memory_budget: bytes of working memory per device for one chunk.
      panels: a ``panels.PanelStack`` (one shape; ``params.pixel_size`` equal to
        its pixel size) that replaces the setup's detector: every shot renders
        every panel.
    Returns:
      Array (n_shots, spixels, fpixels) — (n_shots, n_panels, n_slow, n_fast)
      with ``panels`` —, sharded along the shot axis when ``devices`` > 1.
      Shot i equals ``simulate(*single_shot(setup, params, shots, i))`` (with
      panels: ``panels.simulate_panels(*single_shot(…), panels)``).
    """
    n = shots.n_shots
    S = shots.n_sources
    n_dev = len(jax.local_devices()) if devices is None else int(devices)
    n_dev = max(1, min(n_dev, n, len(jax.local_devices())))
    st = shot_setup(setup, S)
    n_panels = 1
    if panels is not None:
        from .panels import panel_setup

        # inside the jitted renderer the pixel size is traced and can no longer be checked
        if not np.isclose(float(np.asarray(params.pixel_size)), panels.pixel_size, rtol=1e-9, atol=0.0):
            raise ValueError(f"simulate_shots: panels have pixel size {panels.pixel_size} mm but "
                             f"params.pixel_size is {float(np.asarray(params.pixel_size))} mm")
        st = panel_setup(st, panels)  # idempotent: simulate_panels applies it again inside
        n_panels = panels.n_panels
    per_dev = -(-n // n_dev)
    itemsize = jnp.dtype(jnp.result_type(params.wavelength)).itemsize
    c, tile = choose_chunk(st, per_dev, memory_budget, itemsize, n_panels)
    if chunk is not None:
        c = max(1, min(int(chunk), per_dev))
        tile = chunk_tile(st, c)
    if kernel.fast_path_applies(st) and not setup.tile_pixels:
        st = dataclasses.replace(st, tile_pixels=int(tile))
    per_dev = -(-per_dev // c) * c
    total = per_dev * n_dev
    ks = _kernel_shots(shots)

    def pad(x):
        x = jnp.asarray(x)
        if total == n:
            return x
        return jnp.concatenate([x, jnp.broadcast_to(x[-1:], (total - n,) + x.shape[1:])])

    batch = jax.tree_util.tree_map(pad, ks)
    if n_dev > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as PS

        mesh = Mesh(np.asarray(jax.local_devices()[:n_dev]), ("shots",))
        batch = jax.device_put(batch, NamedSharding(mesh, PS("shots")))
    out = _render(st, params, batch, c, n_dev, panels)
    return out[:n] if total != n else out


# -------------------------------------------------------------------------------------------
# Hosts
# -------------------------------------------------------------------------------------------


def process_shot_indices(n_shots: int, process_index: Optional[int] = None,
                         process_count: Optional[int] = None) -> np.ndarray:
    """The shots process p of P renders: the contiguous block [⌊p·n/P⌋, ⌊(p+1)·n/P⌋).

    Defaults come from ``jax.process_index()``/``jax.process_count()`` (after
    ``jax.distributed.initialize``).  Blocks, not strides, so that each process
    writes one contiguous slab of the dataset.
    """
    p = jax.process_index() if process_index is None else int(process_index)
    P = jax.process_count() if process_count is None else int(process_count)
    return np.arange(p * n_shots // P, (p + 1) * n_shots // P)
