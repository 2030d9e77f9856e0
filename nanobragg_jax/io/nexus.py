"""NeXus/NXmx HDF5 files: images of every panel with the geometry that describes them, as
DIALS reads them.  :func:`create_nxmx` is the one definition of the layout; the single-image
writer :func:`write_nxmx` (``-h5file``) and the shot stacks of ``nanoBragg-shots``
(``nanobragg_jax.dataset``: streamed block by block, and the virtual master file joining the
parts written by several processes) all build their files with it.

Layout (NX_class attributes on every group, ``units`` on every dimensioned field):

* ``/entry`` (NXentry): ``definition = "NXmx"``, ``start_time``, ``end_time``;
* ``/entry/data`` (NXdata, ``signal = "data"``): ``data`` of shape (n_images, n_panels, slow, fast)
  — NXmx always puts the frame axis first and its ``data_origin`` indexes the axes after it, so
  one shot of several panels is (1, n_panels, slow, fast) — or (n_images, slow, fast) for a
  single panel; float32 photons or int32 counts; compressed with bitshuffle/LZ4 through
  ``hdf5plugin`` when it is installed, else gzip;
* ``/entry/instrument`` (NXinstrument) with
  ``beam`` (NXbeam: ``incident_wavelength`` Å — a number; an array (m,) with
  ``incident_wavelength_weights`` (m,) for one spectrum; one wavelength per image (n_images,);
  or (n_images, m) wavelengths and weights for a spectrum per image, as NXmx allows —,
  ``incident_polarization_stokes``, ``flux`` when known; linked as ``/entry/sample/beam`` too) and ``detector`` (NXdetector: ``depends_on``, ``sensor_material``,
  ``sensor_thickness``, ``x/y_pixel_size``, ``transformations`` and one NXdetector_module per
  panel with ``data_origin`` ([i, 0, 0], or [0, 0] for one panel), ``data_size``,
  ``data_stride``, ``module_offset``,
  ``fast_pixel_direction``, ``slow_pixel_direction``);
* ``/entry/sample`` (NXsample): ``depends_on`` the ``omega`` rotation about the spindle (one
  angle per image).

Fields of :func:`create_nxmx` can be given as values, as :class:`Allocate` (created empty, filled
with 0, written later — a stack streamed to the file) or as an ``h5py.VirtualLayout`` (a virtual
dataset joining other files).

Geometry is written in the NeXus (McStas) frame: z along the beam's travel, y the
polarisation normal made perpendicular to it (for the C program's default frame: −y), x = y × z.
Each module's ``module_offset`` is a translation of |O| along O/|O| (O = the outer corner of
pixel (0, 0), mm) after the detector's zero ``origin`` translation; ``fast_pixel_direction`` and
``slow_pixel_direction`` are translations of one pixel (mm) along the fast and slow axes
depending on ``module_offset``, so that pixel (f, s) starts at O + f·px·fast + s·px·slow.
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

__all__ = ["write_nxmx", "create_nxmx", "Allocate", "stored_shape", "simulation_geometry", "put_field",
           "mcstas_basis", "require_h5py"]

PathLike = Union[str, "os.PathLike[str]"]


def require_h5py():
    """Import h5py or say how to get it."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("writing NeXus/HDF5 files needs h5py: pip install 'nanobragg-jax[formats]'") from None
    return h5py


def _compression() -> dict:
    """Dataset keywords: bitshuffle/LZ4 via hdf5plugin when installed, else gzip."""
    try:
        import hdf5plugin  # noqa: F401  (registers the filters)

        return dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
    except Exception:  # optional; any failure → the built-in filter
        return dict(compression="gzip", compression_opts=4, shuffle=True)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def mcstas_basis(beam_travel: Any, polarization_normal: Any) -> np.ndarray:
    """Rows ex, ey, ez of the NeXus frame in lab coordinates (v_nexus = basis @ v_lab)."""
    ez = _unit(beam_travel)
    ey = np.asarray(polarization_normal, np.float64)
    ey = ey - (ey @ ez) * ez
    if np.linalg.norm(ey) < 1e-9:  # any perpendicular direction
        trial = np.eye(3)[int(np.argmin(np.abs(ez)))]
        ey = trial - (trial @ ez) * ez
    ey = _unit(ey)
    ex = np.cross(ey, ez)
    return np.stack([ex, ey, ez])


class Allocate(NamedTuple):
    """A field that :func:`create_nxmx` creates empty (filled with 0) to be written later."""

    shape: tuple
    dtype: Any = np.float64


def stored_shape(n_images: int, n_panels: int, n_slow: int, n_fast: int) -> tuple:
    """Shape of ``/entry/data/data``: (n_images, n_panels, slow, fast), or (n_images, slow, fast)
    for one panel (NXmx: the frame axis always leads; the module axis only when there are
    several)."""
    lead = (int(n_images),) if int(n_panels) == 1 else (int(n_images), int(n_panels))
    return lead + (int(n_slow), int(n_fast))


def put_field(group: Any, name: str, value: Any, units: Optional[str] = None, *, chunks: Any = None,
              compress: bool = False, **attrs: Any) -> Any:
    """Create field ``name`` of ``group`` from a value, an :class:`Allocate` (empty, filled with
    0) or an ``h5py.VirtualLayout``, with its ``units`` and other attributes; ``compress``:
    bitshuffle/LZ4 or gzip (see the module docstring)."""
    h5py = require_h5py()
    extra = _compression() if compress else {}
    if isinstance(value, h5py.VirtualLayout):
        ds = group.create_virtual_dataset(name, value, fillvalue=0)
    elif isinstance(value, Allocate):
        ds = group.create_dataset(name, tuple(value.shape), value.dtype, fillvalue=0, chunks=chunks, **extra)
    else:
        ds = group.create_dataset(name, data=value, chunks=chunks, **extra)
    if units is not None:
        ds.attrs["units"] = units
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _group(parent, name: str, nx_class: str):
    g = parent.create_group(name)
    g.attrs["NX_class"] = nx_class
    return g


def _shape_of(value: Any) -> tuple:
    return tuple(getattr(value, "shape", np.shape(value)))


def create_nxmx(fh: Any, panels: Sequence[Any], data: Any, *, wavelength: Any,
                wavelength_weights: Any = None, beam_travel: Any = (0.0, 0.0, 1.0),
                polarization_normal: Any = (0.0, 1.0, 0.0), polarization_fraction: float = 0.5,
                flux: float = 0.0, spindle_axis: Any = (1.0, 0.0, 0.0), phi: Any = 0.0,
                osc: float = 0.0, sensor_thickness: float = 0.0, sensor_material: str = "Si",
                count_time: float = 1.0, data_units: str = "photons",
                title: str = "nanobragg-jax simulation") -> Any:
    """Build the NXmx layout (module docstring) in the open, empty h5py file ``fh``.

    Args:
      panels: one entry per panel (objects or mappings with ``origin`` (mm), ``fast_axis``,
        ``slow_axis``, ``n_fast``, ``n_slow``, ``pixel_size`` (mm), optionally ``name``), all of
        one shape.
      data: ``/entry/data/data`` of shape :func:`stored_shape` (n_images, [n_panels,] slow,
        fast): an array (written compressed, one image per chunk), an :class:`Allocate` (the
        same, empty) or an ``h5py.VirtualLayout``.
      wavelength, wavelength_weights: Å and relative weights (shapes in the module docstring);
        values, :class:`Allocate` or virtual layouts.
      beam_travel, polarization_normal, polarization_fraction: the beam in the lab frame (the
        Kahn factor is 2p − 1); they also fix the NeXus frame (see :func:`mcstas_basis`).
      spindle_axis, phi, osc: goniometer axis (lab), start angle(s) (deg, one per image) and width.
      sensor_thickness: mm (0: not written).
      data_units: ``units`` of the data ("photons" or "counts").
    Returns:
      the ``/entry/data/data`` dataset.
    """
    h5py = require_h5py()
    from ..panels import _panel_fields

    plist = [_panel_fields(p) for p in panels]
    if not plist:
        raise ValueError("create_nxmx: no panels")
    shapes = {(p["n_slow"], p["n_fast"]) for p in plist}
    if len(shapes) != 1:
        raise ValueError(f"create_nxmx: panels of different shapes {sorted(shapes)} need one file per shape")
    (ns, nf), = shapes
    n_panels = len(plist)
    dshape = _shape_of(data)
    if len(dshape) < 3 or dshape[1:] != stored_shape(1, n_panels, ns, nf)[1:]:
        raise ValueError(f"create_nxmx: data of shape {dshape} for {n_panels} panel(s) of "
                         f"{ns}x{nf} pixels (expected {stored_shape(dshape[0] if dshape else 1, n_panels, ns, nf)})")
    n_img = dshape[0]
    basis = mcstas_basis(beam_travel, polarization_normal)

    fh.attrs["default"] = "entry"
    fh.attrs["creator"] = "nanobragg-jax"
    fh.attrs["HDF5_Version"] = h5py.version.hdf5_version
    entry = _group(fh, "entry", "NXentry")
    entry.attrs["default"] = "data"
    entry.create_dataset("definition", data="NXmx")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    entry.create_dataset("start_time", data=now)
    entry.create_dataset("end_time", data=now)
    entry.create_dataset("end_time_estimated", data=now)
    entry.create_dataset("title", data=title)

    dgroup = _group(entry, "data", "NXdata")
    dgroup.attrs["signal"] = "data"
    virtual = isinstance(data, h5py.VirtualLayout)
    # one image per chunk (an empty stack, e.g. a process with no shots, cannot be chunked)
    chunked = not virtual and n_img > 0
    ds = put_field(dgroup, "data", data, data_units, chunks=(1,) * (len(dshape) - 2) + (ns, nf) if chunked else None,
                   compress=chunked)

    inst = _group(entry, "instrument", "NXinstrument")
    inst.create_dataset("name", data="nanobragg-jax simulated beamline")
    beam = _group(inst, "beam", "NXbeam")
    if not isinstance(wavelength, (Allocate, h5py.VirtualLayout)):
        wavelength = np.asarray(wavelength, np.float64)
    put_field(beam, "incident_wavelength", wavelength, "angstrom")
    if wavelength_weights is not None:
        if not isinstance(wavelength_weights, (Allocate, h5py.VirtualLayout)):
            wavelength_weights = np.asarray(wavelength_weights, np.float64)
        put_field(beam, "incident_wavelength_weights", wavelength_weights)
    # Stokes vector of a beam polarised to degree K = 2p − 1 with its E-vector
    # perpendicular to the polarisation normal (ψ: angle of E from +x in the NeXus frame)
    kahn = 2.0 * float(polarization_fraction) - 1.0
    e_vec = basis @ np.cross(_unit(polarization_normal), _unit(beam_travel))
    psi = np.arctan2(e_vec[1], e_vec[0])
    put_field(beam, "incident_polarization_stokes", np.array([1.0, kahn * np.cos(2 * psi), kahn * np.sin(2 * psi), 0.0]))
    put_field(beam, "incident_beam_size", np.array([0.1, 0.1]), "mm")
    if flux > 0:
        put_field(beam, "flux", float(flux), "Hz")

    det = _group(inst, "detector", "NXdetector")
    det.create_dataset("description", data="nanobragg-jax simulated detector")
    det.create_dataset("type", data="pixel")
    if sensor_thickness > 0:
        det.create_dataset("sensor_material", data=sensor_material)
        put_field(det, "sensor_thickness", float(sensor_thickness), "mm")
    px = float(plist[0]["pixel_size"])
    put_field(det, "x_pixel_size", px, "mm")
    put_field(det, "y_pixel_size", px, "mm")
    put_field(det, "count_time", float(count_time), "s")
    put_field(det, "saturation_value", int(np.iinfo(np.int32).max))
    put_field(det, "underload_value", -1)
    det.create_dataset("depends_on", data="/entry/instrument/detector/transformations/origin")
    dtrans = _group(det, "transformations", "NXtransformations")
    put_field(dtrans, "origin", 0.0, "mm", transformation_type="translation", vector=np.array([0.0, 0.0, 1.0]),
           depends_on=".", offset=np.zeros(3))
    dset_path = "/entry/instrument/detector/transformations/origin"
    for i, p in enumerate(plist):
        mod = _group(det, f"module{i}", "NXdetector_module")
        if p["name"]:
            mod.attrs["local_name"] = p["name"]
        origin = basis @ p["origin"]
        dist = float(np.linalg.norm(origin))
        if n_panels == 1:
            put_field(mod, "data_origin", np.array([0, 0], np.int32))
            put_field(mod, "data_size", np.array([ns, nf], np.int32))
            put_field(mod, "data_stride", np.array([1, 1], np.int32))
        else:
            put_field(mod, "data_origin", np.array([i, 0, 0], np.int32))
            put_field(mod, "data_size", np.array([1, ns, nf], np.int32))
            put_field(mod, "data_stride", np.array([1, 1, 1], np.int32))
        put_field(mod, "module_offset", dist, "mm", transformation_type="translation",
               vector=origin / dist if dist > 0 else np.array([0.0, 0.0, 1.0]),
               offset=np.zeros(3), depends_on=dset_path)
        mpath = mod.name + "/module_offset"
        put_field(mod, "fast_pixel_direction", px, "mm", transformation_type="translation",
               vector=_unit(basis @ p["fast"]), offset=np.zeros(3), depends_on=mpath)
        put_field(mod, "slow_pixel_direction", px, "mm", transformation_type="translation",
               vector=_unit(basis @ p["slow"]), offset=np.zeros(3), depends_on=mpath)

    sample = _group(entry, "sample", "NXsample")
    sample.create_dataset("name", data="simulated crystal")
    sample["beam"] = beam  # hard link: NXmx places NXbeam under NXsample too
    strans = _group(sample, "transformations", "NXtransformations")
    phis = np.broadcast_to(np.asarray(phi, np.float64), (n_img,)).copy()
    put_field(strans, "omega", phis, "deg", transformation_type="rotation",
           vector=_unit(basis @ np.asarray(spindle_axis, np.float64)), offset=np.zeros(3), depends_on=".")
    put_field(strans, "omega_increment_set", float(osc), "deg")
    sample.create_dataset("depends_on", data="/entry/sample/transformations/omega")
    return ds


def simulation_geometry(exp: Any, truth: Any) -> dict:
    """The :func:`create_nxmx` keywords (beam, polarisation, spindle, scan, sensor) of a simulation.

    ``exp``: an ``Experiment`` (``from_cli_args``); ``truth``: its ground truth
    ``io.expt.model_from_experiment(exp, …)`` (polarisation normal and fraction, panel thickness).
    The scan starts at φ0 (deg) and spans phisteps·phistep (0 for a still).
    """
    params, setup = exp.params, exp.setup
    osc = float(params.phistep) * setup.phisteps if setup.phisteps > 1 else 0.0
    return dict(beam_travel=np.asarray(params.beam_vector, np.float64),
                polarization_normal=np.asarray(truth.beam.polarization_normal, np.float64),
                polarization_fraction=float(truth.beam.polarization_fraction),
                spindle_axis=np.asarray(params.spindle_axis, np.float64), phi=float(params.phi0), osc=osc,
                sensor_thickness=float(truth.panels[0].thickness))


def write_nxmx(path: PathLike, images: Any, panels: Sequence[Any], *, wavelength: Any,
               wavelength_weights: Any = None, dtype: str = "float32", **geometry: Any) -> None:
    """Write an NXmx file of finished images (``-h5file``).

    Args:
      images: (n_panels, slow, fast) for one shot or (n_images, n_panels, slow, fast); all
        panels of one shape (write one file per shape group otherwise).
      panels: one entry per panel: objects or mappings with ``origin`` (mm), ``fast_axis``,
        ``slow_axis``, ``pixel_size`` (mm) and optionally ``name`` (a PanelStack's
        ``panel(i)`` dicts or io.expt.ExptPanel); the shape comes from ``images``.
      wavelength: Å, a number or an array (a spectrum, with ``wavelength_weights``).
      dtype: "float32" (photons) or "int32" (rounded counts).
      geometry: the other keywords of :func:`create_nxmx` (beam_travel, polarization_normal,
        polarization_fraction, flux, spindle_axis, phi, osc, sensor_thickness,
        sensor_material, count_time, title).
    The file is written to a temporary name and renamed, so no partial file is left behind.
    """
    h5py = require_h5py()
    data = np.asarray(images)
    if data.ndim == 2:
        data = data[None]
    if data.ndim == 3:  # one shot
        data = data[None]
    if data.ndim != 4:
        raise ValueError(f"write_nxmx: images must be (panels, slow, fast) or (images, panels, slow, fast), got {data.shape}")
    n_img, n_panels, ns, nf = data.shape
    plist = [dict(p, n_fast=nf, n_slow=ns) if isinstance(p, dict) and "n_fast" not in p else p for p in panels]
    if len(plist) != n_panels:
        raise ValueError(f"write_nxmx: {len(plist)} panels for image data with {n_panels} panels")
    if dtype == "int32":
        data = np.clip(np.rint(data), np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    elif dtype == "float32":
        data = data.astype(np.float32)
    else:
        raise ValueError(f"write_nxmx: dtype must be float32 or int32, got {dtype!r}")
    stored = data.reshape(stored_shape(n_img, n_panels, ns, nf))

    from ._files import atomic_write

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as fh:
            create_nxmx(fh, plist, stored, wavelength=wavelength, wavelength_weights=wavelength_weights,
                        data_units="counts" if dtype == "int32" else "photons", **geometry)

    atomic_write(path, write)
