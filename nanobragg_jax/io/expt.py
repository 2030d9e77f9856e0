"""DIALS/dxtbx experiment lists (``.expt`` JSON): read one experiment, write the ground truth.

The file is the JSON of dxtbx's ``ExperimentList.to_dict``: an ``"experiment"`` list whose
entries index into the model lists ``"beam"``, ``"detector"``, ``"crystal"``, ``"goniometer"``,
``"scan"`` (and ``"imageset"``).  Conventions, and how they map onto the simulator's flags:

* beam ``direction`` points from the sample toward the source; the beam travels along
  −direction (our ``-beam_vector``).  ``wavelength`` in Å.  ``polarization_normal`` is the normal
  of the plane that holds the E-vector and the beam; ``polarization_fraction`` p is the share of
  the intensity polarised in that plane, i.e. the Kahn factor is 2p − 1 (p = 0.5: unpolarised)
  and our ``-polar_vector`` (the E-vector) is normal × travel direction.  ``flux`` 0 means "not
  given" (the default fluence is used).
* a detector is a list of ``panels`` and optionally a ``hierarchy`` of groups.  Each panel's
  ``origin`` (mm; the outer corner of pixel (0, 0)), ``fast_axis`` and ``slow_axis`` are given in
  the frame of its parent group; a group's frame maps a local vector (x, y, z) to
  x·fast + y·slow + z·(fast × slow) (+ its origin, for points) in its own parent's frame, down
  from the lab frame at the root.  Without a hierarchy the panel frames are the lab frame.
  ``image_size`` is [fast, slow] pixels, ``pixel_size`` [fast, slow] mm, ``thickness`` mm,
  ``mu`` 1/mm.
* the crystal's ``real_space_a/b/c`` are the cell vectors (Å, lab frame) at the goniometer datum;
  the goniometer's ``setting_rotation`` S and ``fixed_rotation`` F put the crystal at angle φ at
  S·R(axis, φ)·F·a, so the simulator gets a₀ = S·F·a (as a ``-mat`` matrix file) and the
  spindle S·axis.  The scan's
  ``oscillation`` is [start, width] in degrees per image.

:func:`read_expt` returns an :class:`ExptModel`; :func:`expt_argv` turns it into the equivalent
command-line flags (so that every other flag keeps its meaning and a one-panel file renders
exactly like the flags); :func:`simulation_from_expt` gives what ``simulate_panels`` needs;
:func:`model_from_experiment` and :func:`write_expt` write the ground truth of a simulation.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._files import atomic_write_bytes, read_input_bytes
from .errors import InputFileError

__all__ = [
    "ExptBeam", "ExptPanel", "ExptCrystal", "ExptGoniometer", "ExptScan", "ExptModel",
    "read_expt", "parse_expt", "write_expt", "expt_to_dict", "expt_argv", "simulation_from_expt",
    "model_from_experiment", "ExptSimulation", "DETECTOR_FLAGS", "write_matrix_file", "flags_for",
]

PathLike = Union[str, "os.PathLike[str]"]
RTD = 180.0 / math.pi


@dataclass
class ExptBeam:
    """Beam: ``direction`` (3,) toward the source (unit), ``wavelength`` Å, polarisation
    ``polarization_normal`` (3,) and ``polarization_fraction`` p (Kahn factor 2p − 1),
    ``flux`` photons/s (0 = not given), ``transmission``."""

    direction: np.ndarray
    wavelength: float
    polarization_normal: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))
    polarization_fraction: float = 0.5
    flux: float = 0.0
    transmission: float = 1.0
    divergence: float = 0.0
    sigma_divergence: float = 0.0

    @property
    def travel(self) -> np.ndarray:
        """Unit propagation direction (our ``-beam_vector``)."""
        return -_unit(self.direction)

    @property
    def kahn_factor(self) -> float:
        return 2.0 * self.polarization_fraction - 1.0


@dataclass
class ExptPanel:
    """A panel in the lab frame (hierarchy already composed): mm and unit vectors."""

    origin: np.ndarray
    fast_axis: np.ndarray
    slow_axis: np.ndarray
    n_fast: int
    n_slow: int
    pixel_size: float
    name: str = ""
    thickness: float = 0.0  # mm
    mu: float = 0.0  # 1/mm
    material: str = ""
    trusted_range: tuple = (-1.0, 1e9)
    type: str = "SENSOR_PAD"


@dataclass
class ExptCrystal:
    """Real-space cell vectors (rows a, b, c; Å; lab frame at the goniometer datum)."""

    real_space: np.ndarray
    space_group_hall_symbol: str = " P 1"
    mosaicity: float = 0.0  # deg (written for information)


@dataclass
class ExptGoniometer:
    rotation_axis: np.ndarray
    fixed_rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    setting_rotation: np.ndarray = field(default_factory=lambda: np.eye(3))


@dataclass
class ExptScan:
    image_range: tuple = (1, 1)
    oscillation: tuple = (0.0, 0.0)  # start, width (deg)
    exposure_time: float = 1.0


@dataclass
class ExptModel:
    """One experiment of an experiment list."""

    beam: ExptBeam
    panels: list
    crystal: Optional[ExptCrystal] = None
    goniometer: Optional[ExptGoniometer] = None
    scan: Optional[ExptScan] = None
    images: tuple = ()

    def panel_groups(self):
        """Panels grouped by shape and sensor: [(indices, PanelStack)] (see panels.group_by_shape).

        A panel with a sensor (thickness, mu > 0) renders with its own.  When the panels'
        sensors differ, a panel without one has none (``PanelStack.no_sensor``); when they
        are all alike, the sensor of the flags applies (see :func:`flags_for`).
        """
        import dataclasses as dc

        from ..panels import group_by_shape

        groups = group_by_shape(self.panels)
        if not self.shared_sensor():
            groups = [(idx, st if st.thickness is not None else dc.replace(st, no_sensor=True))
                      for idx, st in groups]
        return groups

    def shared_sensor(self) -> bool:
        """Whether every panel has panel 0's sensor (thickness and mu, or none)."""
        p0 = self.panels[0]
        return all((p.thickness, p.mu) == (p0.thickness, p0.mu) for p in self.panels)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class _Reader:
    """Field access with one-line errors naming the file and the JSON path."""

    def __init__(self, path: PathLike):
        self.path = path

    def fail(self, where: str, what: str):
        raise InputFileError(self.path, f"{where}: {what}")

    def get(self, d: Any, key: str, where: str, default: Any = ...) -> Any:
        if not isinstance(d, dict):
            self.fail(where, "expected a JSON object")
        if key not in d:
            if default is ...:
                self.fail(where, f"missing '{key}'")
            return default
        return d[key]

    def num(self, d, key, where, default: Any = ...) -> float:
        v = self.get(d, key, where, default)
        try:
            x = float(v)
        except (TypeError, ValueError):
            self.fail(f"{where}.{key}", f"expected a number, got {v!r}")
        if not math.isfinite(x):
            self.fail(f"{where}.{key}", "must be a finite number")
        return x

    def vec(self, d, key, where, n: int = 3, default: Any = ...) -> np.ndarray:
        v = self.get(d, key, where, default)
        try:
            a = np.asarray(v, np.float64).reshape(-1)
        except (TypeError, ValueError):
            self.fail(f"{where}.{key}", f"expected {n} numbers, got {v!r}")
        if a.shape != (n,) or not np.all(np.isfinite(a)):
            self.fail(f"{where}.{key}", f"expected {n} finite numbers, got {v!r}")
        return a

    def axis(self, d, key, where, default: Any = ...) -> np.ndarray:
        a = self.vec(d, key, where, 3, default)
        if np.linalg.norm(a) == 0:
            self.fail(f"{where}.{key}", "the zero vector has no direction")
        return a


def read_expt(path: PathLike, index: int = 0) -> ExptModel:
    """Read experiment ``index`` of a dxtbx experiment list (.expt JSON).

    Raises:
      InputFileError: missing/unreadable file, not JSON, missing or malformed fields.
    """
    raw = read_input_bytes(path, "experiment list")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not a JSON experiment list ({exc})") from None
    return parse_expt(data, index=index, path=path)


def parse_expt(data: dict, index: int = 0, path: PathLike = "<expt>") -> ExptModel:
    """:func:`read_expt` on already-parsed JSON."""
    r = _Reader(path)
    exps = r.get(data, "experiment", "experiment list")
    if not isinstance(exps, list) or not exps:
        r.fail("experiment", "the experiment list is empty")
    if not 0 <= index < len(exps):
        r.fail("experiment", f"no experiment {index} (the file has {len(exps)})")
    e = exps[index]

    def model(kind: str, required: bool):
        ref = r.get(e, kind, f"experiment[{index}]", None)
        if ref is None:
            if required:
                r.fail(f"experiment[{index}]", f"has no {kind}")
            return None
        items = r.get(data, kind, "experiment list")
        if isinstance(ref, dict):  # an inline model
            return ref
        if not isinstance(items, list) or not isinstance(ref, int) or not 0 <= ref < len(items):
            r.fail(f"experiment[{index}].{kind}", f"index {ref!r} does not name a {kind} model")
        return items[ref]

    beam = _parse_beam(r, model("beam", True))
    panels = _parse_detector(r, model("detector", True))
    c = model("crystal", False)
    crystal = None
    if c is not None:
        A = np.stack([r.vec(c, k, "crystal") for k in ("real_space_a", "real_space_b", "real_space_c")])
        if abs(np.linalg.det(A)) < 1e-12:
            r.fail("crystal", "real_space_a, b, c are linearly dependent")
        crystal = ExptCrystal(real_space=A, space_group_hall_symbol=str(c.get("space_group_hall_symbol", " P 1")),
                              mosaicity=float(c.get("mosaicity", 0.0) or 0.0))
    g = model("goniometer", False)
    gonio = None
    if g is not None:
        if "axes" in g and "rotation_axis" not in g:
            r.fail("goniometer", "multi-axis goniometers are not supported")
        gonio = ExptGoniometer(
            rotation_axis=r.axis(g, "rotation_axis", "goniometer"),
            fixed_rotation=r.vec(g, "fixed_rotation", "goniometer", 9, list(np.eye(3).ravel())).reshape(3, 3),
            setting_rotation=r.vec(g, "setting_rotation", "goniometer", 9, list(np.eye(3).ravel())).reshape(3, 3))
    s = model("scan", False)
    scan = None
    if s is not None:
        osc = r.vec(s, "oscillation", "scan", 2, [0.0, 0.0])
        rng = r.get(s, "image_range", "scan", [1, 1])
        scan = ExptScan(image_range=tuple(int(x) for x in rng), oscillation=(float(osc[0]), float(osc[1])))
    images: tuple = ()
    iset = model("imageset", False)
    if isinstance(iset, dict):
        images = tuple(str(x) for x in iset.get("images", ()) or ([iset["template"]] if "template" in iset else []))
    return ExptModel(beam=beam, panels=panels, crystal=crystal, goniometer=gonio, scan=scan, images=images)


def _parse_beam(r: _Reader, b: dict) -> ExptBeam:
    direction = r.axis(b, "direction", "beam")
    lam = r.num(b, "wavelength", "beam")
    if lam <= 0:
        r.fail("beam.wavelength", f"must be positive, got {lam}")
    p = r.num(b, "polarization_fraction", "beam", 0.5)
    if not 0.0 <= p <= 1.0:
        r.fail("beam.polarization_fraction", f"must lie in [0, 1], got {p}")
    flux = r.num(b, "flux", "beam", 0.0)
    if flux < 0:
        r.fail("beam.flux", f"must not be negative, got {flux}")
    return ExptBeam(direction=_unit(direction), wavelength=lam,
                    polarization_normal=r.vec(b, "polarization_normal", "beam", 3, [0.0, 1.0, 0.0]),
                    polarization_fraction=p, flux=flux,
                    transmission=r.num(b, "transmission", "beam", 1.0),
                    divergence=r.num(b, "divergence", "beam", 0.0),
                    sigma_divergence=r.num(b, "sigma_divergence", "beam", 0.0))


def _frame(r: _Reader, d: dict, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = _unit(r.axis(d, "fast_axis", where))
    s = _unit(r.axis(d, "slow_axis", where))
    if abs(float(f @ s)) > 1e-6:
        r.fail(where, "fast_axis and slow_axis are not perpendicular")
    return f, s, r.vec(d, "origin", where)


def _parse_detector(r: _Reader, det: Any) -> list:
    if isinstance(det, list):  # the old format: a bare list of panels
        det = {"panels": det}
    plist = r.get(det, "panels", "detector")
    if not isinstance(plist, list) or not plist:
        r.fail("detector.panels", "no panels")
    local = []
    for i, p in enumerate(plist):
        where = f"detector.panels[{i}]"
        f, s, o = _frame(r, p, where)
        size = r.vec(p, "image_size", where, 2)
        px = r.vec(p, "pixel_size", where, 2)
        if np.any(size < 1) or np.any(size != np.round(size)):
            r.fail(f"{where}.image_size", f"must be two positive integers, got {list(size)}")
        if np.any(px <= 0):
            r.fail(f"{where}.pixel_size", f"must be positive, got {list(px)}")
        if not np.isclose(px[0], px[1], rtol=1e-9, atol=0):
            r.fail(f"{where}.pixel_size", f"rectangular pixels {list(px)} are not supported (square only)")
        local.append(dict(o=o, f=f, s=s, n_fast=int(size[0]), n_slow=int(size[1]), px=float(px[0]),
                          name=str(p.get("name", f"panel{i}")), thickness=float(p.get("thickness", 0.0) or 0.0),
                          mu=float(p.get("mu", 0.0) or 0.0), material=str(p.get("material", "")),
                          trusted_range=tuple(p.get("trusted_range", (-1.0, 1e9))),
                          type=str(p.get("type", "SENSOR_PAD"))))
    # compose the hierarchy: lab = R_parent·local + origin_parent, R = [fast slow fast×slow]
    lab: dict = {}
    hier = det.get("hierarchy") if isinstance(det, dict) else None

    def walk(node: Any, R: np.ndarray, t: np.ndarray, where: str) -> None:
        if not isinstance(node, dict):
            r.fail(where, "expected a JSON object")
        if "panel" in node:
            i = node["panel"]
            if not isinstance(i, int) or not 0 <= i < len(local):
                r.fail(where, f"panel index {i!r} out of range")
            lab[i] = (R, t)
            return
        if "fast_axis" in node:
            f, s, o = _frame(r, node, where)
            R, t = R @ np.stack([f, s, np.cross(f, s)], axis=1), R @ o + t
        for k, child in enumerate(node.get("children", [])):
            walk(child, R, t, f"{where}.children[{k}]")

    if hier:
        walk(hier, np.eye(3), np.zeros(3), "detector.hierarchy")
    panels = []
    for i, p in enumerate(local):
        R, t = lab.get(i, (np.eye(3), np.zeros(3)))
        panels.append(ExptPanel(origin=R @ p["o"] + t, fast_axis=R @ p["f"], slow_axis=R @ p["s"],
                                n_fast=p["n_fast"], n_slow=p["n_slow"], pixel_size=p["px"], name=p["name"],
                                thickness=p["thickness"], mu=p["mu"], material=p["material"],
                                trusted_range=p["trusted_range"], type=p["type"]))
    return panels


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def _l(v) -> list:
    return [float(x) for x in np.asarray(v, np.float64).ravel()]


def expt_to_dict(model: ExptModel) -> dict:
    """The experiment list JSON (dxtbx's to_dict layout; a flat detector: panels in the lab frame
    under a root group with the identity frame)."""
    b = model.beam
    beam = {"__id__": "monochromatic", "direction": _l(_unit(b.direction)), "wavelength": float(b.wavelength),
            "divergence": float(b.divergence), "sigma_divergence": float(b.sigma_divergence),
            "polarization_normal": _l(b.polarization_normal),
            "polarization_fraction": float(b.polarization_fraction), "flux": float(b.flux),
            "transmission": float(b.transmission), "probe": "x-ray", "sample_to_source_distance": 0.0}
    panels = []
    for i, p in enumerate(model.panels):
        panels.append({
            "name": p.name or f"panel{i}", "type": p.type, "fast_axis": _l(p.fast_axis),
            "slow_axis": _l(p.slow_axis), "origin": _l(p.origin), "raw_image_offset": [0, 0],
            "image_size": [int(p.n_fast), int(p.n_slow)], "pixel_size": [float(p.pixel_size)] * 2,
            "trusted_range": _l(p.trusted_range), "thickness": float(p.thickness),
            "material": p.material, "mu": float(p.mu), "identifier": "", "mask": [], "gain": 1.0,
            "pedestal": 0.0, "px_mm_strategy": {"type": "SimplePxMmStrategy"}})
    hierarchy = {"name": "", "type": "", "fast_axis": [1.0, 0.0, 0.0], "slow_axis": [0.0, 1.0, 0.0],
                 "origin": [0.0, 0.0, 0.0], "raw_image_offset": [0, 0], "image_size": [0, 0],
                 "pixel_size": [0.0, 0.0], "trusted_range": [0.0, 0.0], "thickness": 0.0, "material": "",
                 "mu": 0.0, "identifier": "", "mask": [], "gain": 1.0, "pedestal": 0.0,
                 "px_mm_strategy": {"type": "SimplePxMmStrategy"},
                 "children": [{"panel": i} for i in range(len(panels))]}
    exp: dict = {"__id__": "Experiment", "identifier": "", "beam": 0, "detector": 0}
    out: dict = {"__id__": "ExperimentList", "experiment": [exp], "beam": [beam],
                 "detector": [{"panels": panels, "hierarchy": hierarchy}]}
    for key in ("goniometer", "scan", "crystal", "imageset"):
        out[key] = []
    if model.goniometer is not None:
        g = model.goniometer
        out["goniometer"].append({"rotation_axis": _l(_unit(g.rotation_axis)), "fixed_rotation": _l(g.fixed_rotation),
                                  "setting_rotation": _l(g.setting_rotation)})
        exp["goniometer"] = 0
    if model.scan is not None:
        s = model.scan
        n = s.image_range[1] - s.image_range[0] + 1
        out["scan"].append({"image_range": [int(s.image_range[0]), int(s.image_range[1])],
                            "batch_offset": 0, "oscillation": _l(s.oscillation),
                            "properties": {"epochs": [0.0] * n, "exposure_time": [float(s.exposure_time)] * n}})
        exp["scan"] = 0
    if model.crystal is not None:
        c = model.crystal
        cd = {"__id__": "crystal", "real_space_a": _l(c.real_space[0]), "real_space_b": _l(c.real_space[1]),
              "real_space_c": _l(c.real_space[2]), "space_group_hall_symbol": c.space_group_hall_symbol}
        if c.mosaicity:
            cd["mosaicity"] = float(c.mosaicity)
        out["crystal"].append(cd)
        exp["crystal"] = 0
    if model.images:
        out["imageset"].append({"__id__": "ImageSet", "images": list(model.images), "mask": "", "gain": "",
                                "pedestal": "", "dx": "", "dy": "", "params": {}})
        exp["imageset"] = 0
    return out


def write_expt(path: PathLike, model: ExptModel) -> None:
    """Write ``model`` as a one-experiment list (atomically)."""
    text = json.dumps(expt_to_dict(model), indent=2) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def model_from_experiment(exp: Any, panels: Optional[Sequence[Any]] = None,
                          images: Sequence[str] = ()) -> ExptModel:
    """The ground truth of a simulation (an ``Experiment`` from ``from_cli_args``) as an ExptModel.

    Detector: ``panels`` (objects with origin/fast_axis/slow_axis/n_fast/n_slow/pixel_size, or a
    PanelStack's ``panel(i)`` dicts) or, by default, the one panel of the experiment (its pix0,
    fdet, sdet).  Crystal: the cell vectors at φ = 0 (after any misset), the spindle as the
    goniometer axis, the scan starting at φ0 with the oscillation range.
    """
    params, setup, info = exp.params, exp.setup, exp.info
    travel = _unit(np.asarray(params.beam_vector, np.float64))
    polar = _unit(np.asarray(params.polar_vector, np.float64))
    normal = np.cross(travel, polar)
    normal = _unit(normal) if np.linalg.norm(normal) > 0 else np.array([0.0, 1.0, 0.0])
    kahn = 0.0 if setup.nopolar else float(params.kahn_factor)
    beam = ExptBeam(direction=-travel, wavelength=float(params.wavelength), polarization_normal=normal,
                    polarization_fraction=(1.0 + kahn) / 2.0, flux=0.0)
    thickness = float(params.thickness) / 1000.0 if setup.has_thickness else 0.0
    mu = 1000.0 / float(params.attenuation_depth) if setup.has_thickness else 0.0
    px = float(params.pixel_size)
    plist = []
    if panels is None:
        plist.append(ExptPanel(origin=np.asarray(info["pix0"]) * 1e3, fast_axis=np.asarray(info["fdet"]),
                               slow_axis=np.asarray(info["sdet"]), n_fast=setup.fpixels, n_slow=setup.spixels,
                               pixel_size=px, name="panel0", thickness=thickness, mu=mu,
                               material="Si" if thickness else ""))
    else:
        from ..panels import _panel_fields

        fields_ = [_panel_fields(p) for p in panels]
        # panels whose sensors differ (an -expt with per-panel sensors) keep their own; else
        # the experiment's sensor (the flags, which may add one to bare panels)
        own = len({(q["thickness"], q["mu"]) for q in fields_}) > 1
        for i, (p, q) in enumerate(zip(panels, fields_)):
            t, m = (q["thickness"], q["mu"]) if own else (thickness, mu)
            plist.append(ExptPanel(origin=q["origin"], fast_axis=q["fast"], slow_axis=q["slow"],
                                   n_fast=q["n_fast"], n_slow=q["n_slow"], pixel_size=q["pixel_size"],
                                   name=q["name"] or f"panel{i}", thickness=t, mu=m,
                                   material=(getattr(p, "material", "") or "Si") if t else ""))
    real = np.asarray(info["real_vectors"], np.float64)
    crystal = ExptCrystal(real_space=real, mosaicity=float(params.mosaic_spread))
    gonio = ExptGoniometer(rotation_axis=_unit(np.asarray(params.spindle_axis, np.float64)))
    osc = float(params.phistep) * setup.phisteps if setup.phisteps > 1 else 0.0
    scan = ExptScan(image_range=(1, 1), oscillation=(float(params.phi0), osc))
    return ExptModel(beam=beam, panels=plist, crystal=crystal, goniometer=gonio, scan=scan, images=tuple(images))


# ---------------------------------------------------------------------------------------------
# .expt → flags → simulation
# ---------------------------------------------------------------------------------------------

# Flags that describe the detector or its placement: the .expt supplies them.
DETECTOR_FLAGS = frozenset({
    "-distance", "-close_distance", "-Xbeam", "-Ybeam", "-Xclose", "-Yclose", "-ORGX", "-ORGY", "-pivot",
    "-mosflm", "-xds", "-adxv", "-denzo", "-dials", "-fdet_vector", "-sdet_vector", "-odet_vector",
    "-pix0_vector", "-twotheta_axis", "-twotheta", "-detector_rotx", "-detector_roty", "-detector_rotz",
    "-pixel", "-detpixels", "-detpixels_f", "-detpixels_x", "-detpixels_s", "-detpixels_y", "-detsize",
    "-detsize_f", "-detsize_s", "-curved_det", "-img", "-mask", "-roi",
})


def _g(x: float) -> str:
    return repr(float(x))


def write_matrix_file(path: PathLike, real: np.ndarray, wavelength_A: float) -> None:
    """A MOSFLM matrix file of the cell vectors ``real`` (rows a, b, c; Å) for ``-mat``.

    The file's columns are a*, b*, c* times λ (its rows the x, y, z components), i.e. the matrix
    λ·A⁻¹ for A with rows a, b, c (a·a* = 1, a·b* = 0).  With ``-mat`` the simulator builds the
    real vectors back from these reciprocal vectors exactly (a ``-cell`` would go through the
    C program's standard setting, whose angles differ from the cell's by up to ~1e-2°).
    """
    M = np.linalg.inv(np.asarray(real, np.float64)) * float(wavelength_A)
    text = "".join(" ".join(repr(float(x)) for x in row) + "\n" for row in M)
    atomic_write_bytes(path, text.encode("ascii"))


def crystal_vectors(model: "ExptModel") -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(cell vectors a₀ = S·F·a as rows (Å), spindle S·axis or None) of the model's crystal."""
    real = np.asarray(model.crystal.real_space, np.float64)
    if model.goniometer is None:
        return real, None
    g = model.goniometer
    return (g.setting_rotation @ g.fixed_rotation @ real.T).T, g.setting_rotation @ _unit(g.rotation_axis)


def expt_argv(model: ExptModel, panel: int = 0, matrix_file: Optional[PathLike] = None,
              wavelength_A: Optional[float] = None) -> list[str]:
    """The command-line flags equivalent to the experiment, with panel ``panel`` as the detector.

    Beam (``-beam_vector``, ``-lambda``, ``-polar``, ``-polar_vector``, ``-flux`` when given),
    detector (CUSTOM vectors through the beam pivot: ``-fdet_vector -sdet_vector -odet_vector
    -distance -Xbeam -Ybeam -detpixels_f -detpixels_s -pixel``, and the sensor
    ``-detector_thick -detector_abs`` when the panel has a thickness), crystal (``-mat`` of a
    matrix written to ``matrix_file`` for the wavelength ``wavelength_A`` the run will use —
    default the beam's —; no crystal flags without ``matrix_file``), spindle and scan
    (``-spindle_axis -phi -osc``).
    """
    from ..panels import PanelStack, panel_lowering

    b = model.beam
    travel = b.travel
    argv = ["-beam_vector"] + [_g(x) for x in travel] + ["-lambda", _g(b.wavelength)]
    normal = _unit(b.polarization_normal)
    e_vec = np.cross(normal, travel)
    if np.linalg.norm(e_vec) < 1e-9:
        raise ValueError("beam: polarization_normal is parallel to the beam direction")
    argv += ["-polar", _g(b.kahn_factor), "-polar_vector"] + [_g(x) for x in _unit(e_vec)]
    if b.flux > 0:
        argv += ["-flux", _g(b.flux)]
    p = model.panels[panel]
    stack = PanelStack(origin=p.origin[None], fast=p.fast_axis[None], slow=p.slow_axis[None],
                       n_fast=p.n_fast, n_slow=p.n_slow, pixel_size=p.pixel_size)
    low = panel_lowering(stack, travel)
    argv += (["-fdet_vector"] + [_g(x) for x in low["fdet"][0]] + ["-sdet_vector"] + [_g(x) for x in low["sdet"][0]]
             + ["-odet_vector"] + [_g(x) for x in low["odet"][0]]
             + ["-distance", _g(low["distance"][0]), "-Xbeam", _g(low["Xbeam"][0]), "-Ybeam", _g(low["Ybeam"][0]),
                "-detpixels_f", str(p.n_fast), "-detpixels_s", str(p.n_slow), "-pixel", _g(p.pixel_size)])
    if p.thickness > 0 and p.mu > 0:
        argv += ["-detector_thick", _g(p.thickness * 1000.0), "-detector_abs", _g(1000.0 / p.mu)]
    if model.crystal is not None:
        real, axis = crystal_vectors(model)
        if matrix_file is not None:
            write_matrix_file(matrix_file, real, b.wavelength if wavelength_A is None else wavelength_A)
            argv += ["-mat", os.fspath(matrix_file)]
        if axis is not None:
            argv += ["-spindle_axis"] + [_g(x) for x in axis]
        if model.scan is not None:
            start, width = model.scan.oscillation
            argv += ["-phi", _g(start)]
            if width > 0:
                argv += ["-osc", _g(width)]
    return argv


@dataclass
class ExptSimulation:
    """What :func:`simulation_from_expt` returns: the experiment (setup, params from the flags),
    the panel groups for ``panels.simulate_detector`` and the model read."""

    experiment: Any
    groups: list
    model: ExptModel

    def render(self) -> list:
        """One image per panel (file order)."""
        from ..panels import simulate_detector

        return simulate_detector(self.experiment.setup, self.experiment.params, self.groups)


def check_no_detector_flags(argv: Sequence[str]) -> None:
    """With ``-expt`` the file describes the detector: detector flags are an error."""
    from ..flags import FlagError

    for a in argv:
        if a in DETECTOR_FLAGS:
            raise FlagError(f"{a}: the detector comes from -expt; remove {a} (edit the .expt instead)")


def simulation_from_expt(path: PathLike, argv: Sequence[str] = (), index: int = 0) -> ExptSimulation:
    """Read an .expt and build the simulation: the file's geometry, wavelength and crystal
    orientation, with ``argv`` (any other flags: ``-default_F``, ``-hkl``, ``-N``, ``-mosaic``…)
    applied after them.  The crystal must come from the file or from ``-cell``/``-mat`` in argv."""
    from ..experiment import from_cli_args

    argv = [str(a) for a in argv]
    check_no_detector_flags(argv)
    model = read_expt(path, index)
    with tempfile.TemporaryDirectory(prefix="nanobragg-expt-") as tmp:
        base = flags_for(model, argv, os.path.join(tmp, "crystal.mat"), path)
        exp = from_cli_args(base + argv)
    return ExptSimulation(experiment=exp, groups=model.panel_groups(), model=model)


def flags_for(model: ExptModel, argv: Sequence[str], matrix_file: PathLike, path: PathLike = "<expt>") -> list[str]:
    """``expt_argv`` for a run whose other flags are ``argv``: the crystal matrix is written for
    the wavelength the run ends up with (a later ``-lambda``/``-energy`` wins, as in the C
    program's flag loop).

    The sensor flags are those of the first panel with a sensor (panel 0's when all share
    it): they fix the layer count (``-thicksteps`` in ``argv`` applies as in the C program).
    When the panels' sensors differ, each panel renders with its own, and panels without
    one with none (``ExptModel.panel_groups``).
    """
    from ..report import _c_state

    first = next((i for i, p in enumerate(model.panels) if p.thickness > 0 and p.mu > 0), 0)
    try:
        probe = expt_argv(model)
        lam = _c_state(probe + list(argv)).lambda0 * 1e10
        argv0 = expt_argv(model, matrix_file=matrix_file, wavelength_A=lam)
        if first != 0:  # panel 0 has no sensor: the sensor flags of the first one that has
            p = model.panels[first]
            argv0 += ["-detector_thick", _g(p.thickness * 1000.0), "-detector_abs", _g(1000.0 / p.mu)]
        return argv0
    except ValueError as exc:
        raise InputFileError(path, str(exc)) from None
