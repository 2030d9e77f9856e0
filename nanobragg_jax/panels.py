"""Multi-panel detectors: stacks of flat panels rendered by the single-panel kernel.

A panel is a flat rectangle of pixels in the lab frame (the frame of the beam
vector, mm):

* ``origin`` (3,) — the outer corner of pixel (0, 0), mm;
* ``fast``, ``slow`` (3,) — unit vectors along increasing fast and slow index;
* ``n_fast``, ``n_slow`` — pixel counts; ``pixel_size`` — pixel edge, mm.

The centre of pixel (f, s) is origin + (f+½)·px·fast + (s+½)·px·slow (the
convention of dxtbx and of the C program's ``pix0``).

Each panel is exactly the C program's CUSTOM-convention detector with the beam
pivot whose vectors and beam centre are (see :func:`panel_lowering`)

    fdet = fast,  sdet = slow,  odet = ±unit(fast × slow)  (the sign making origin·odet > 0),
    distance = (O·odet)/(b·odet),   Xbeam·fast + Ybeam·slow = distance·b − O,

so that the C program's pix0 = −Xbeam·fdet − Ybeam·sdet + distance·b equals the
origin O.  :func:`panel_frames` builds that detector frame directly from the
panel (pix0 = O without the round trip through distance and beam centre), and
:func:`simulate_panels` renders all panels of one shape in the tile loop of the
single-panel renderer, with tiles cut along panel boundaries (:func:`_tiling`): a
tile is a group of whole panels (``jax.vmap`` over their frames) or a chunk of one
panel, so each panel's constants are per-tile constants, the working memory is that
of one tile of the single-panel renderer and the panel loop costs no Python iteration.

Gradients flow to every panel's origin and axes (and per-panel sensors);
:meth:`PanelStack.perturbed` applies a small shift (mm) and rotation vector (rad)
per panel, the usual refinement parameterisation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from . import kernel
from .config import Params, Setup
from .geometry import detector as det_geo
from .geometry import vectors as V

MM = 1e-3

__all__ = [
    "PanelStack",
    "panel_frames",
    "panel_lowering",
    "panel_setup",
    "panel_constants",
    "PanelConstants",
    "simulate_panels",
    "group_by_shape",
    "simulate_detector",
    "rotation_matrices",
]


@dataclass(frozen=True)
class PanelStack:
    """Panels of one shape, stacked (a pytree: arrays are leaves, shape is static).

    Attributes:
      origin: (n, 3) mm, outer corner of pixel (0, 0) of each panel, lab frame.
      fast, slow: (n, 3) unit vectors of increasing fast / slow pixel index.
      n_fast, n_slow: pixels per panel along fast and slow (static).
      pixel_size: pixel edge in mm (static; must equal ``params.pixel_size``).
      names: optional panel names (static, for files).
      thickness, mu: optional (n,) per-panel sensors: thickness (mm, > 0) and attenuation
        coefficient μ (1/mm, > 0), dxtbx's units.  None (default): every panel has the
        sensor of ``params`` (``-detector_thick``/``-detector_abs``).  Given, they replace
        it panel by panel (the layer count stays ``Setup.thicksteps``).
      no_sensor: static; True: these panels have no sensor (capture fraction 1) whatever
        ``params`` says (e.g. the bare panels of a file whose other panels have sensors).
    """

    origin: Array
    fast: Array
    slow: Array
    n_fast: int
    n_slow: int
    pixel_size: float = 0.1
    names: tuple = ()
    thickness: Optional[Array] = None
    mu: Optional[Array] = None
    no_sensor: bool = False

    @property
    def n_panels(self) -> int:
        return int(np.shape(self.origin)[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape (n_panels, n_slow, n_fast)."""
        return (self.n_panels, self.n_slow, self.n_fast)

    @classmethod
    def from_panels(cls, panels: Iterable[Any]) -> "PanelStack":
        """Stack panels given as objects or mappings with ``origin``, ``fast_axis``
        (or ``fast``), ``slow_axis`` (or ``slow``), ``n_fast``, ``n_slow``,
        ``pixel_size`` (and optionally ``name``).  All must have one shape and
        one pixel size (see :func:`group_by_shape` otherwise)."""
        items = [_panel_fields(p) for p in panels]
        if not items:
            raise ValueError("PanelStack.from_panels: no panels")
        shapes = {(p["n_fast"], p["n_slow"]) for p in items}
        if len(shapes) != 1:
            raise ValueError(f"PanelStack.from_panels: panels of different shapes {sorted(shapes)}; "
                             "use group_by_shape")
        sizes = {p["pixel_size"] for p in items}
        if len(sizes) != 1:
            raise ValueError(f"PanelStack.from_panels: panels of different pixel sizes {sorted(sizes)}")
        sensors = {_has_sensor(p) for p in items}
        if len(sensors) != 1:
            raise ValueError("PanelStack.from_panels: panels with and without a sensor (thickness, mu); "
                             "use group_by_shape")
        (nf, ns), = shapes
        sensor = sensors.pop()
        return cls(origin=np.stack([p["origin"] for p in items]),
                   fast=np.stack([p["fast"] for p in items]),
                   slow=np.stack([p["slow"] for p in items]),
                   n_fast=nf, n_slow=ns, pixel_size=float(items[0]["pixel_size"]),
                   names=tuple(p["name"] for p in items),
                   thickness=np.array([p["thickness"] for p in items]) if sensor else None,
                   mu=np.array([p["mu"] for p in items]) if sensor else None)

    def panel(self, i: int) -> dict:
        """Panel i as a plain dict (numpy arrays, mm; thickness mm and mu 1/mm, 0 without a
        per-panel sensor)."""
        sensor = self.thickness is not None
        return dict(origin=np.asarray(self.origin[i], np.float64), fast=np.asarray(self.fast[i], np.float64),
                    slow=np.asarray(self.slow[i], np.float64), n_fast=self.n_fast, n_slow=self.n_slow,
                    pixel_size=self.pixel_size, name=self.names[i] if i < len(self.names) else f"panel{i}",
                    thickness=float(self.thickness[i]) if sensor else 0.0, mu=float(self.mu[i]) if sensor else 0.0)

    def centers(self) -> Array:
        """(n, 3) mm: the geometric centre of each panel."""
        half = 0.5 * self.pixel_size
        return self.origin + half * self.n_fast * self.fast + half * self.n_slow * self.slow

    def perturbed(self, shift_mm: Optional[Array] = None, rotvec_rad: Optional[Array] = None) -> "PanelStack":
        """Move each panel: rotate it about its own centre by ``rotvec_rad`` (n, 3),
        then translate it by ``shift_mm`` (n, 3).  Zeros give the same panels;
        differentiable in both (a rotation vector r turns by |r| about r/|r|)."""
        origin, fast, slow = self.origin, self.fast, self.slow
        if rotvec_rad is not None:
            R = rotation_matrices(rotvec_rad)
            centre = self.centers()
            fast = jnp.einsum("nij,nj->ni", R, fast)
            slow = jnp.einsum("nij,nj->ni", R, slow)
            origin = centre + jnp.einsum("nij,nj->ni", R, origin - centre)
        if shift_mm is not None:
            origin = origin + shift_mm
        return dataclasses.replace(self, origin=origin, fast=fast, slow=slow)

    def astype(self, dtype: Any) -> "PanelStack":
        def cast(a):
            return None if a is None else jnp.asarray(a, dtype)

        return dataclasses.replace(self, origin=cast(self.origin), fast=cast(self.fast), slow=cast(self.slow),
                                   thickness=cast(self.thickness), mu=cast(self.mu))


jax.tree_util.register_dataclass(PanelStack, data_fields=["origin", "fast", "slow", "thickness", "mu"],
                                 meta_fields=["n_fast", "n_slow", "pixel_size", "names", "no_sensor"])


def _has_sensor(fields_: dict) -> bool:
    return fields_["thickness"] > 0 and fields_["mu"] > 0


def _check_sensors(panels: PanelStack) -> None:
    """Per-panel sensors: both arrays or neither, one positive value per panel (when concrete).

    (Checked here, not in the constructor: pytree operations rebuild stacks with any leaves.)
    """
    if (panels.thickness is None) != (panels.mu is None):
        raise ValueError("PanelStack: give both thickness and mu (per-panel sensors) or neither")
    if panels.thickness is None:
        return
    if panels.no_sensor:
        raise ValueError("PanelStack: no_sensor=True with per-panel sensors (thickness, mu)")
    n = panels.n_panels
    for name in ("thickness", "mu"):
        v = getattr(panels, name)
        if np.shape(v) != (n,):
            raise ValueError(f"PanelStack.{name}: one value per panel ({n}), got shape {np.shape(v)}")
        try:
            bad = not np.all(np.asarray(v) > 0)
        except (TypeError, jax.errors.TracerArrayConversionError):
            bad = False  # traced: the caller's values
        if bad:
            raise ValueError(f"PanelStack.{name} must be positive for every panel (mm, 1/mm), got {v}; "
                             "panels without a sensor go in a stack without thickness/mu")


def _panel_fields(p: Any) -> dict:
    def get(*keys):
        for k in keys:
            if isinstance(p, Mapping) and k in p:
                return p[k]
            if not isinstance(p, Mapping) and hasattr(p, k):
                return getattr(p, k)
        raise ValueError(f"panel {p!r}: missing {keys[0]}")

    def vec(*keys):
        v = np.asarray(get(*keys), np.float64).reshape(-1)
        if v.shape != (3,) or not np.all(np.isfinite(v)):
            raise ValueError(f"panel field {keys[0]} must be 3 finite numbers, got {v}")
        return v

    def optional(key, default):
        try:
            return get(key)
        except ValueError:
            return default

    thickness, mu = float(optional("thickness", 0.0) or 0.0), float(optional("mu", 0.0) or 0.0)
    if not (np.isfinite(thickness) and np.isfinite(mu) and thickness >= 0 and mu >= 0):
        raise ValueError(f"panel {p!r}: thickness (mm) and mu (1/mm) must be finite and ≥ 0")
    return dict(origin=vec("origin"), fast=vec("fast_axis", "fast"), slow=vec("slow_axis", "slow"),
                n_fast=int(get("n_fast")), n_slow=int(get("n_slow")),
                pixel_size=float(get("pixel_size")), name=str(optional("name", "")),
                thickness=thickness, mu=mu)


def rotation_matrices(rotvec: Array) -> Array:
    """Rotation matrices (n, 3, 3) of rotation vectors (n, 3), rad (right-handed).

    R = I + a[r]× + b[r]×², a = sin θ/θ, b = (1 − cos θ)/θ², θ = |r|; near θ = 0
    the Taylor series a = 1 − θ²/6, b = ½ − θ²/24 keeps value and derivative exact.
    """
    r = jnp.asarray(rotvec)
    t2 = jnp.sum(r * r, axis=-1)
    small = t2 < 1e-8
    t2s = jnp.where(small, 1.0, t2)
    t = jnp.sqrt(t2s)
    a = jnp.where(small, 1.0 - t2 / 6.0, jnp.sin(t) / t)
    b = jnp.where(small, 0.5 - t2 / 24.0, (1.0 - jnp.cos(t)) / t2s)
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    zero = jnp.zeros_like(x)
    K = jnp.stack([jnp.stack([zero, -z, y], -1), jnp.stack([z, zero, -x], -1),
                   jnp.stack([-y, x, zero], -1)], -2)
    eye = jnp.eye(3, dtype=r.dtype)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------


def panel_frames(panels: PanelStack, params: Params) -> det_geo.DetectorFrame:
    """The detector frame (metres) of every panel, each field with a leading panel axis.

    pix0 = origin; fdet, sdet = unit(fast), unit(slow); odet = ±unit(fast × slow)
    oriented so that close_distance = pix0·odet > 0 (the solid angle
    Ω = px²·close/R³ is then positive whichever way the panel's axes run);
    distance = close/(b·odet) along the beam to the panel plane (b·odet = 0 is
    replaced by the smallest normal number, as the C program does); Fbeam,
    Sbeam: where the beam meets that plane; Fclose, Sclose = −pix0·f, −pix0·s.
    """
    dtype = jnp.result_type(params.wavelength)
    origin = jnp.asarray(panels.origin, dtype) * MM
    f = V.unitize(jnp.asarray(panels.fast, dtype))
    s = V.unitize(jnp.asarray(panels.slow, dtype))
    normal = V.unitize(V.cross(f, s))
    side = jnp.where(V.dot(origin, normal) < 0.0, -1.0, 1.0).astype(dtype)
    o = normal * side[:, None]
    beam = V.unitize(jnp.asarray(params.beam_vector, dtype))
    close = V.dot(origin, o)
    ratio = V.dot(beam[None, :], o)
    ratio = jnp.where(ratio == 0.0, jnp.finfo(dtype).tiny, ratio)
    distance = close / ratio
    hit = distance[:, None] * beam[None, :] - origin
    n = origin.shape[0]
    px = jnp.broadcast_to(jnp.asarray(params.pixel_size, dtype) * MM, (n,))
    return det_geo.DetectorFrame(
        fdet=f, sdet=s, odet=o, pix0=origin, beam=jnp.broadcast_to(beam, (n, 3)), distance=distance,
        close_distance=close, pixel_size=px, Fbeam=V.dot(f, hit), Sbeam=V.dot(s, hit),
        Fclose=-V.dot(origin, f), Sclose=-V.dot(origin, s))


class PanelConstants(NamedTuple):
    """What differs from panel to panel in the kernel's Context, each with a leading panel axis."""

    frame: det_geo.DetectorFrame
    layer_step: Optional[Array]  # (n,) m; None: the sensor of params
    mu: Optional[Array]  # (n,) 1/m


def panel_constants(psetup: Setup, params: Params, panels: PanelStack) -> PanelConstants:
    """Each panel's detector frame and, with per-panel sensors, its layer thickness
    Δ = thickness/divisor (m) and attenuation μ (1/m): computed once per panel."""
    frame = panel_frames(panels, params)
    if panels.thickness is None:
        return PanelConstants(frame, None, None)
    dtype = jnp.result_type(params.wavelength)
    step = jnp.asarray(panels.thickness, dtype) * MM / psetup.thick_divisor
    return PanelConstants(frame, step, jnp.asarray(panels.mu, dtype) / MM)


def _panel_context(ctx: kernel.Context, const: PanelConstants) -> kernel.Context:
    """The kernel's Context of one panel (``const`` without its panel axis)."""
    if const.layer_step is None:
        return ctx._replace(frame=const.frame)
    return ctx._replace(frame=const.frame, layer_step=const.layer_step, mu=const.mu)


def panel_lowering(panels: PanelStack, beam_vector: Any) -> dict:
    """Each panel as the C program's CUSTOM/beam-pivot flags (float64 numpy, host side).

    Returns a dict of arrays with a leading panel axis: ``fdet``, ``sdet``,
    ``odet`` (unit vectors), ``distance`` (mm, signed: the beam meets the plane
    at distance·b), ``Xbeam``, ``Ybeam`` (mm) solving
    X·fdet + Y·sdet = distance·b − origin (the 2×2 normal equations, so that
    non-orthogonal axes work too).  With these,
    pix0 = −X·fdet − Y·sdet + distance·b reproduces the origin.
    Raises ValueError for a panel whose plane contains the beam direction.
    """
    O = np.asarray(panels.origin, np.float64)
    f = np.asarray(panels.fast, np.float64)
    s = np.asarray(panels.slow, np.float64)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    s = s / np.linalg.norm(s, axis=1, keepdims=True)
    nrm = np.cross(f, s)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    side = np.where(np.sum(O * nrm, axis=1) < 0, -1.0, 1.0)
    o = nrm * side[:, None]
    b = np.asarray(beam_vector, np.float64)
    b = b / np.linalg.norm(b)
    ratio = o @ b
    if np.any(np.abs(ratio) < 1e-12):
        bad = int(np.flatnonzero(np.abs(ratio) < 1e-12)[0])
        raise ValueError(f"panel {bad}: its plane contains the beam direction (no beam-pivot distance)")
    D = np.sum(O * o, axis=1) / ratio
    v = D[:, None] * b[None, :] - O
    ff, fs, ss = np.sum(f * f, 1), np.sum(f * s, 1), np.sum(s * s, 1)
    vf, vs = np.sum(v * f, 1), np.sum(v * s, 1)
    det = ff * ss - fs * fs
    X = (ss * vf - fs * vs) / det
    Y = (ff * vs - fs * vf) / det
    return dict(fdet=f, sdet=s, odet=o, distance=D, Xbeam=X, Ybeam=Y)


def panel_setup(setup: Setup, panels: PanelStack) -> Setup:
    """The single-panel Setup each panel is rendered with (CUSTOM convention, beam pivot,
    the whole panel as ROI; with per-panel sensors, a sensor even when ``setup`` has none)."""
    if setup.curved_detector:
        raise ValueError("simulate_panels: -curved_det is a property of a single-panel detector, "
                         "not of flat panels")
    nf, ns = int(panels.n_fast), int(panels.n_slow)
    if nf <= 0 or ns <= 0:
        raise ValueError(f"simulate_panels: panels need at least one pixel (got {nf}x{ns})")
    psetup = dataclasses.replace(setup, spixels=ns, fpixels=nf, roi=(0, nf - 1, 0, ns - 1),
                                 convention="CUSTOM", pivot="BEAM", close_distance_given=False,
                                 has_mask=False)
    if panels.no_sensor:
        psetup = dataclasses.replace(psetup, has_thickness=False, thicksteps=1, thick_divisor=1.0,
                                     oversample_thick=False)
    elif panels.thickness is not None and not setup.has_thickness:
        # per-panel sensors and none in the flags: the command line's layers for
        # -detector_thick without -thicksteps (2 layers of thickness/2)
        psetup = dataclasses.replace(psetup, has_thickness=True, thicksteps=2, thick_divisor=2.0)
    return psetup


def _check_pixel_size(panels: PanelStack, params: Params) -> None:
    try:
        px = float(params.pixel_size)
    except (TypeError, jax.errors.ConcretizationTypeError):  # traced: checked by the caller
        return
    # float32 params hold the pixel size rounded to ~6e-8 relative: compare at that precision
    eps = np.finfo(jnp.result_type(params.pixel_size)).eps
    if not np.isclose(px, panels.pixel_size, rtol=max(1e-9, 8 * float(eps)), atol=0.0):
        raise ValueError(f"simulate_panels: panels have pixel size {panels.pixel_size} mm but "
                         f"params.pixel_size is {px} mm (one pixel size per PanelStack)")


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


# A loop iteration's fixed cost (dispatch of the body's fused loops), in pixel-equivalents:
# weighs fewer, longer iterations against padding panels in _tiling.
_ITERATION_COST = kernel.FAST_TILE_MIN


class Tiling(NamedTuple):
    """How the pixels of a PanelStack are cut into tiles (see :func:`_tiling`).

    Tile t holds ``group`` panels (vmapped) × ``chunk`` consecutive pixels (raster
    order) of each: panels ``g·group … g·group + group − 1`` with g = t // chunks,
    pixels ``c·chunk …`` with c = t % chunks.  Either group = 1 (a panel spans
    ``chunks`` tiles) or chunks = 1 (a tile holds whole panels), so the tiles'
    output is the (panels, pixels) image without a transpose.
    """

    group: int  # panels per tile
    chunk: int  # pixels per panel per tile
    chunks: int  # tiles per panel (group = 1) or 1
    groups: int  # panel groups, padded so that tiles divide evenly over the devices
    n_dev: int  # devices the tiles are spread over

    @property
    def n_tiles(self) -> int:
        return self.groups * self.chunks


def _tiling(psetup: Setup, n_panels: int, n_dev: int = 1) -> Tiling:
    """Cut the panels into tiles of about one single-panel tile (the memory bound of ``simulate``).

    A tile never straddles two panels' pixel ranges, so the detector frame is a
    per-tile constant (no per-pixel gather of panel constants).  A panel larger
    than the tile budget is split into equal chunks (one panel per tile); smaller
    panels are grouped whole, choosing the group size that minimises the work of
    the busiest device (padding panels included, plus a fixed cost per tile).
    Fast-path chunks are multiples of TILE_QUANTUM (vectorised loops).
    """
    n_valid = psetup.fpixels * psetup.spixels
    budget = kernel.tile_pixels(psetup)
    fast = kernel.fast_path_applies(psetup)

    def fit(pixels: int) -> int:
        return kernel.round_tile(pixels, n_valid) if fast else max(1, min(pixels, n_valid))

    def per_device(tiles: int) -> tuple[int, int]:
        dev = max(1, min(n_dev, tiles))
        return -(-tiles // dev) * dev, dev

    if n_valid > budget:
        chunks = -(-n_valid // fit(budget))
        chunk = fit(-(-n_valid // chunks))  # equal chunks: less padding in the last one
        chunks = -(-n_valid // chunk)
        dev = max(1, min(n_dev, n_panels * chunks))
        groups = n_panels
        while (groups * chunks) % dev:  # pad whole (dropped) panels: tiles divide over the devices
            groups += 1
        return Tiling(1, chunk, chunks, groups, dev)
    chunk = fit(n_valid)
    best = None
    for group in range(1, max(1, min(n_panels, budget // chunk)) + 1):
        groups, dev = per_device(-(-n_panels // group))
        cost = (groups // dev) * (group * chunk + _ITERATION_COST)
        key = (cost, groups * group)
        if best is None or key < best[0]:
            best = (key, Tiling(group, chunk, 1, groups, dev))
    return best[1]


def simulate_panels(setup: Setup, params: Params, panels: PanelStack,
                    mask: Optional[Array] = None, *, devices: Optional[int] = None) -> Array:
    """Render every panel (photons per pixel), shape (n_panels, n_slow, n_fast).

    Args:
      setup: the static description; its detector size, ROI, convention and
        pivot are replaced per panel (see :func:`panel_setup`).
      params: continuous parameters shared by all panels (beam, crystal,
        sampling, sensor); the detector fields (distance, beam centre, vectors,
        rotations) are not used: the geometry comes from ``panels``.
        ``params.pixel_size`` must equal ``panels.pixel_size``.
      panels: the stacked panels (one shape).
      mask: optional (n_panels, n_slow, n_fast) or (n_slow, n_fast); 0 = not rendered.
    Returns:
      Array (n_panels, n_slow, n_fast) in the dtype of ``params``; panel i equals
      the C program's image of the CUSTOM/beam-pivot detector of
      ``panel_lowering(panels, beam)[..][i]``.  Differentiable with respect to
      ``params`` and to the panels' origin, fast and slow arrays.
    """
    from .simulate import shared_context

    _check_pixel_size(panels, params)
    _check_sensors(panels)
    psetup = panel_setup(setup, panels)
    if mask is not None:
        mask = jnp.broadcast_to(jnp.asarray(mask), panels.shape)
    if (psetup.shape == "TOPHAT" and jax.config.jax_enable_x64
            and jnp.result_type(params.wavelength) == jnp.float32):
        # as simulate(): hard-edged spots are evaluated in float64 when allowed
        wide = params.astype(jnp.float64)
        return _simulate_panels(psetup, shared_context(psetup, wide), wide, panels.astype(jnp.float64),
                                mask, _n_devices(devices)).astype(jnp.float32)
    return _simulate_panels(psetup, shared_context(psetup, params), params, panels, mask,
                            _n_devices(devices))


def _n_devices(devices: Optional[int]) -> int:
    """CPU devices to spread the tiles over: the same rule as ``simulate(devices=)``."""
    from .simulate import default_devices

    return default_devices() if devices is None else max(1, int(devices))


def _grouped(tree: Any, n_panels: int, tiling: Tiling) -> Any:
    """Per-panel arrays (leading axis n_panels) → (groups, group, ...), padding panels
    repeating the last one (their pixels are rendered and dropped)."""
    idx = np.minimum(np.arange(tiling.groups * tiling.group), n_panels - 1)
    return jax.tree_util.tree_map(
        lambda a: jnp.take(a, idx, axis=0).reshape((tiling.groups, tiling.group) + a.shape[1:]), tree)


def interpolation_switches(psetup: Setup, params: Params, panels: PanelStack,
                           mask: Optional[Array] = None,
                           ctx: Optional[kernel.Context] = None) -> tuple[Array, Array]:
    """Each panel's (raster index, sub-path index) at which the C program turns tricubic
    interpolation off, two (n_panels,) int32 arrays; (n_valid, K) for a panel that never does.

    Each panel is its own C run: the first sub-path (loop order) whose tricubic
    neighbourhood leaves the grid is searched in that panel's raster order, with its own
    frame and sensor.  ``psetup`` is the per-panel setup (:func:`panel_setup`) with
    interpolation on; ``mask`` (n_panels, n_slow, n_fast): masked pixels never trip it;
    ``ctx``: ``kernel.build_context(psetup, params)`` when the caller has it.
    Traceable; integer outputs, so no gradient flows through them.
    """
    n_panels = panels.n_panels
    nf, ns = psetup.fpixels, psetup.spixels
    n_valid = nf * ns
    K = psetup.subpaths_per_pixel
    tiling = _tiling(psetup, n_panels)
    chunk, chunks = tiling.chunk, tiling.chunks
    order = jnp.arange(chunks * chunk, dtype=jnp.int32).reshape(chunks, chunk)
    lin = jnp.minimum(order, n_valid - 1)
    S, F = lin // nf, lin % nf
    order = jnp.minimum(order, n_valid)
    frames = _grouped(panel_constants(psetup, params, panels), n_panels, tiling)
    masks = None if mask is None else _grouped(jnp.broadcast_to(jnp.asarray(mask), panels.shape),
                                                n_panels, tiling)
    ctx0 = jax.lax.stop_gradient(kernel.build_context(psetup, params) if ctx is None else ctx)

    def trig_tile(t):
        c, g = t % chunks, t // chunks
        s, f, o = S[c], F[c], order[c]

        def one(frame, m):
            act = o < n_valid
            if m is not None:
                act = act & (m[s, f] != 0)
            return kernel.interpolation_trigger(psetup, _panel_context(ctx0, frame), s, f, act)

        const = jax.tree_util.tree_map(lambda a: a[g], frames)
        return jax.vmap(one)(const, None if masks is None else masks[g])  # (group, chunk)

    first = jax.lax.map(trig_tile, jnp.arange(tiling.n_tiles, dtype=jnp.int32))
    # (tiles, group, chunk) → (panels, pixels) in raster order: no transpose, as group = 1 or chunks = 1
    first = first.reshape(-1)[:n_panels * chunks * chunk].reshape(n_panels, chunks * chunk)[:, :n_valid]
    hit = first < K
    any_hit = jnp.any(hit, axis=1)
    p_star = jnp.where(any_hit, jnp.argmax(hit, axis=1), n_valid).astype(jnp.int32)
    k_idx = jnp.minimum(p_star, n_valid - 1)
    k_star = jnp.where(any_hit, jnp.take_along_axis(first, k_idx[:, None], 1)[:, 0], K)
    return p_star, k_star.astype(jnp.int32)


@partial(jax.jit, static_argnames=("psetup", "n_dev"))
def _simulate_panels(psetup: Setup, ctx: kernel.Context, params: Params, panels: PanelStack,
                     mask: Optional[Array], n_dev: int = 1) -> Array:
    """The jitted renderer behind ``simulate_panels`` (``ctx`` from ``simulate.shared_context``)."""
    dtype = jnp.result_type(params.wavelength)
    n_panels = panels.n_panels
    nf, ns = psetup.fpixels, psetup.spixels
    n_valid = nf * ns
    tiling = _tiling(psetup, n_panels, n_dev)
    chunk, chunks = tiling.chunk, tiling.chunks
    # Pixel indices of each chunk of a panel (raster order; padding repeats the last
    # pixel with order = n_valid), the same for every panel: built once, not per tile.
    order = jnp.arange(chunks * chunk, dtype=jnp.int32).reshape(chunks, chunk)
    lin = jnp.minimum(order, n_valid - 1)
    S, F = lin // nf, lin % nf
    order = jnp.minimum(order, n_valid)
    tile_ids = jnp.arange(tiling.n_tiles, dtype=jnp.int32)
    # Per-panel constants (detector frame, sensor) once per panel, grouped per tile.
    frames = _grouped(panel_constants(psetup, params, panels), n_panels, tiling)

    def tile_pixels(pix, t):
        """(slow, fast, raster order) of tile t's pixels in each of its panels, and its group."""
        c = t % chunks
        return pix[0][c], pix[1][c], pix[2][c], t // chunks

    def pick(tree, g):
        return jax.tree_util.tree_map(lambda a: a[g], tree)

    def to_image(values):
        """(tiles, group, chunk) tile outputs → (n_panels, n_valid): no transpose, as group = 1
        or chunks = 1."""
        flat = values.reshape(-1)[:n_panels * chunks * chunk]
        return flat.reshape(n_panels, chunks * chunk)[:, :n_valid]

    if psetup.interpolate:
        p_star, k_star = interpolation_switches(psetup, params, panels, mask, ctx)
    else:
        p_star = jnp.zeros((n_panels,), jnp.int32)
        k_star = jnp.zeros((n_panels,), jnp.int32)
    triggers = _grouped((p_star, k_star), n_panels, tiling)

    def render(ctx, frames, triggers, pix, tile_ids):
        # Rematerialised under differentiation like simulate(): only the sub-path
        # sums of a tile are kept for the backward pass.
        def render_tile(t):
            s, f, o, g = tile_pixels(pix, t)

            def one(frame, ps, ks):
                return kernel.pixel_photons(psetup, _panel_context(ctx, frame), s, f, o, (ps, ks))

            return jax.vmap(one)(pick(frames, g), *pick(triggers, g))  # (group, chunk)

        render_tile = jax.checkpoint(
            render_tile, policy=jax.checkpoint_policies.save_only_these_names(kernel.SUBPATH_SUM_NAME))
        if tile_ids.shape[0] == 1:  # one tile: no loop
            return render_tile(tile_ids[0])[None]
        return jax.lax.map(render_tile, tile_ids)  # (tiles, group, chunk)

    if tiling.n_dev > 1:
        from jax.sharding import Mesh, PartitionSpec as PS

        mesh = Mesh(np.asarray(jax.devices("cpu")[:tiling.n_dev]), ("tiles",))
        render = jax.shard_map(render, mesh=mesh, in_specs=(PS(), PS(), PS(), PS(), PS("tiles")),
                               out_specs=PS("tiles"), check_vma=False)
    values = to_image(render(ctx, frames, triggers, (S, F, order), tile_ids)).reshape(n_panels, ns, nf).astype(dtype)
    if mask is not None:
        values = jnp.where(mask != 0, values, 0.0)
    return values


# ---------------------------------------------------------------------------------------------
# detectors of several panel shapes
# ---------------------------------------------------------------------------------------------


def group_by_shape(panels: Sequence[Any]) -> list[tuple[tuple[int, ...], PanelStack]]:
    """Group panels (objects or mappings, see :meth:`PanelStack.from_panels`) by
    (n_fast, n_slow, pixel_size, whether they carry a sensor): a list of (indices into
    ``panels``, PanelStack), in order of first appearance.  Panels with a sensor
    (``thickness`` mm and ``mu`` 1/mm both > 0) give stacks with per-panel sensors;
    the others render with the sensor of ``params``."""
    fields_ = [_panel_fields(p) for p in panels]
    groups: dict = {}
    for i, p in enumerate(fields_):
        groups.setdefault((p["n_fast"], p["n_slow"], p["pixel_size"], _has_sensor(p)), []).append(i)
    return [(tuple(idx), PanelStack.from_panels([fields_[i] for i in idx])) for idx in groups.values()]


def simulate_detector(setup: Setup, params: Params,
                      groups: Sequence[tuple[Sequence[int], PanelStack]]) -> list[Array]:
    """Render a detector whose panels may differ in shape: one :func:`simulate_panels`
    call per shape group; returns one (n_slow, n_fast) image per panel, in the
    original panel order.  A group whose pixel size differs from
    ``params.pixel_size`` is rendered with its own pixel size."""
    n = sum(len(idx) for idx, _ in groups)
    out: list = [None] * n
    for idx, stack in groups:
        p = params
        try:
            same = np.isclose(float(params.pixel_size), stack.pixel_size, rtol=1e-9, atol=0.0)
        except (TypeError, jax.errors.ConcretizationTypeError):
            same = True
        if not same:
            p = params.replace(pixel_size=jnp.asarray(stack.pixel_size, jnp.result_type(params.wavelength)))
        images = simulate_panels(setup, p, stack)
        for k, i in enumerate(idx):
            out[i] = images[k]
    return out
