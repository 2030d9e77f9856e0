"""The command line's multi-panel input and file outputs: ``-expt``, ``-exptout``, ``-h5file``,
``-cbffile`` (kept here so that cli.py only calls four functions).

* ``-expt FILE`` is replaced by the equivalent flags (:func:`io.expt.expt_argv`), placed before
  the user's other flags so that those still apply; detector flags are refused.  With more than
  one panel every panel is rendered (``panels.simulate_detector``) and the C program's outputs
  (float, SMV, PGM, noise) get the panels stacked along the slow axis (padded to the widest).
* ``-exptout FILE``: the ground truth (io.expt.model_from_experiment) of any simulation.
* ``-h5file FILE``: NXmx with all panels (float32 photons), io.nexus.write_nxmx.
* ``-cbffile FILE``: a miniCBF of the -intfile counts (one panel only), io.cbf.write_cbf.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import weakref
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["expand_expt", "output_paths", "precheck", "render_expt_panels", "write_outputs"]

_OUT_FLAGS = ("-exptout", "-h5file", "-cbffile")


def _value(argv: Sequence[str], flag: str) -> Optional[str]:
    val = None
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            val = argv[i + 1]
    return val


def expand_expt(argv: Sequence[str]) -> tuple[list[str], Any]:
    """(argv with ``-expt FILE`` replaced by its flags, the ExptModel or None)."""
    argv = list(argv)
    path = _value(argv, "-expt")
    if path is None:
        return argv, None
    from ..flags import FlagError
    from . import expt as expt_io

    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "-expt":
            i += 2
            continue
        rest.append(argv[i])
        i += 1
    expt_io.check_no_detector_flags(rest)
    model = expt_io.read_expt(path)
    # the crystal goes in as a -mat file; it lives as long as the model (the run)
    tmp = tempfile.mkdtemp(prefix="nanobragg-expt-")
    weakref.finalize(model, shutil.rmtree, tmp, True)
    base = expt_io.flags_for(model, rest, os.path.join(tmp, "crystal.mat"), path)
    if len(model.panels) > 1:
        for flag in ("-printout_pixel", "-trace_pixel", "-printout"):
            if flag in rest:
                raise FlagError(f"{flag}: not available for a multi-panel -expt detector")
    return base + rest, model


def output_paths(argv: Sequence[str]) -> dict[str, str]:
    """{flag: path} of the outputs of this module that argv asks for."""
    out = {}
    for flag in _OUT_FLAGS:
        v = _value(argv, flag)
        if v is not None:
            if v == "":
                from ..flags import FlagError

                raise FlagError(f"{flag}: empty file name")
            out[flag] = v
    return out


def precheck(paths: dict[str, str], model: Any) -> None:
    """Refuse, before anything is rendered or written, outputs that cannot hold this detector."""
    from ..flags import FlagError

    if model is None:
        return
    if "-cbffile" in paths and len(model.panels) != 1:
        raise FlagError("-cbffile: a CBF holds one panel; use -h5file for a multi-panel detector")
    if "-h5file" in paths and len({p.pixel_size for p in model.panels}) != 1:
        raise FlagError("-h5file: panels of different pixel sizes cannot share one NXmx detector")


def render_expt_panels(exp: Any, model: Any) -> tuple[Any, list, np.ndarray]:
    """Render every panel of ``model``: (exp with setup for the stacked image, panel images,
    stacked float image (Σ slow, max fast))."""
    from ..panels import simulate_detector

    groups = model.panel_groups()
    images = [np.asarray(im) for im in simulate_detector(exp.setup, exp.params, groups)]
    width = max(im.shape[1] for im in images)
    stacked = np.concatenate([np.pad(im, ((0, 0), (0, width - im.shape[1]))) for im in images], axis=0)
    ns, nf = stacked.shape
    setup = dataclasses.replace(exp.setup, spixels=ns, fpixels=nf, roi=(0, nf - 1, 0, ns - 1), has_mask=False)
    info = dict(exp.info, panels_solid_angle=panels_solid_angle(exp, groups))
    exp2 = dataclasses.replace(exp, setup=setup, info=info)
    return exp2, images, stacked


def panels_solid_angle(exp: Any, groups: Sequence) -> float:
    """The C program's "solid angle subtended by detector", summed over the panels (each panel
    evaluated as the CUSTOM/beam-pivot detector it is)."""
    import jax

    from .. import report
    from ..panels import panel_frames, panel_setup

    total = 0.0
    for _, stack in groups:
        with jax.enable_x64(True):
            params = exp.params.astype(np.float64).replace(pixel_size=np.float64(stack.pixel_size))
            frames = panel_frames(stack, params)
        psetup = panel_setup(exp.setup, stack)
        for k in range(stack.n_panels):
            info = dict(exp.info)
            for key in ("pix0", "fdet", "sdet", "odet", "beam"):
                info[key] = np.asarray(getattr(frames, key)[k], np.float64)
            for key in ("distance", "close_distance", "Fbeam", "Sbeam", "Fclose", "Sclose"):
                info[key] = float(getattr(frames, key)[k])
            one = dataclasses.replace(exp, setup=psetup, params=params, info=info)
            total += report.solid_angle_sum(one)
    return total


def padded_panels(images: Sequence[np.ndarray], panels: Sequence[Any]) -> tuple[np.ndarray, list, Any]:
    """Panels of different shapes in one NXmx data array: (images zero-padded to the largest
    (slow, fast), float32; the panels as mappings of that shape for the writer; each panel's
    true (slow, fast), or None when all shapes agree).  ``set_module_sizes`` then writes the
    true sizes as each module's ``data_size``, so readers take only the panel's own pixels."""
    from ..panels import _panel_fields

    shapes = [np.shape(im) for im in images]
    ns, nf = max(sh[0] for sh in shapes), max(sh[1] for sh in shapes)
    stack = np.zeros((len(images), ns, nf), np.float32)
    for k, im in enumerate(images):
        stack[k, :shapes[k][0], :shapes[k][1]] = np.asarray(im, np.float32)
    plist = []
    for p in panels:
        q = _panel_fields(p if not isinstance(p, dict) or "n_fast" in p else dict(p, n_fast=nf, n_slow=ns))
        plist.append(dict(origin=q["origin"], fast_axis=q["fast"], slow_axis=q["slow"], n_fast=nf, n_slow=ns,
                          pixel_size=q["pixel_size"], name=q["name"]))
    return stack, plist, (None if len(set(shapes)) == 1 else shapes)


def set_module_sizes(path: str, sizes: Sequence[tuple[int, int]]) -> None:
    """Write each module's true ``data_size`` [1, slow, fast] into an NXmx file written from
    :func:`padded_panels` (the NXmx way to place modules of different sizes in one array)."""
    from .nexus import require_h5py

    h5py = require_h5py()
    with h5py.File(path, "r+") as fh:
        det = fh["entry/instrument/detector"]
        for i, (ns, nf) in enumerate(sizes):
            det[f"module{i}/data_size"][...] = np.array([1, ns, nf], np.int32)


def _panels_of(exp: Any, model: Any) -> list:
    if model is not None:
        return list(model.panels)
    info, setup = exp.info, exp.setup
    return [dict(origin=np.asarray(info["pix0"]) * 1e3, fast_axis=np.asarray(info["fdet"]),
                 slow_axis=np.asarray(info["sdet"]), n_fast=setup.fpixels, n_slow=setup.spixels,
                 pixel_size=float(exp.params.pixel_size), name="panel0")]


def write_outputs(paths: dict[str, str], exp: Any, model: Any, panel_images: Sequence[np.ndarray],
                  ints: np.ndarray, out: Any, staged: Any = None) -> None:
    """Write the requested -exptout / -h5file / -cbffile files (after the render succeeded).

    With ``staged`` (an ``outputs.StagedOutputs``) every file is staged beside its destination
    and renamed into place with the command's other outputs: all or nothing.
    """
    if not paths:
        return

    def emit(flag: str, path: str, writer) -> None:
        if staged is None:
            writer(path)
        else:
            staged.add(flag, path, writer)

    from . import expt as expt_io

    panels = _panels_of(exp, model)
    params, setup, info = exp.params, exp.setup, exp.info
    truth = expt_io.model_from_experiment(exp, panels if model is not None else None,
                                          images=(paths["-h5file"],) if "-h5file" in paths else ())
    if "-exptout" in paths:
        print(f"writing {paths['-exptout']} as a DIALS experiment list ({len(panels)} panel"
              f"{'s' if len(panels) != 1 else ''})", file=out)
        emit("-exptout", paths["-exptout"], lambda p: expt_io.write_expt(p, truth))
    if "-h5file" in paths:
        from . import nexus

        stack, h5_panels, sizes = padded_panels(panel_images, panels)
        print(f"writing {paths['-h5file']} as NeXus/NXmx HDF5 ({stack.shape[0]} x {stack.shape[1]} x "
              f"{stack.shape[2]} float32)", file=out)

        def write_h5(p: str) -> None:
            nexus.write_nxmx(p, stack, h5_panels, wavelength=float(params.wavelength),
                             **nexus.simulation_geometry(exp, truth))
            if sizes is not None:  # panels of different shapes: each module's own size
                set_module_sizes(p, sizes)

        emit("-h5file", paths["-h5file"], write_h5)
    if "-cbffile" in paths:
        from ..flags import FlagError
        from . import cbf

        if len(panel_images) != 1:
            raise FlagError("-cbffile: a CBF holds one panel; use -h5file for a multi-panel detector")
        px = float(params.pixel_size)
        phistep = float(params.phistep) * setup.phisteps if setup.phisteps > 1 else 0.0
        print(f"writing {paths['-cbffile']} as miniCBF (int32, the -intfile counts)", file=out)
        emit("-cbffile", paths["-cbffile"], lambda p: cbf.write_cbf(p, ints, pixel_size_mm=px, wavelength_A=float(params.wavelength),
                      distance_mm=float(info["close_distance"]) * 1e3,
                      beam_xy_px=(float(info["Fbeam"]) * 1e3 / px, float(info["Sbeam"]) * 1e3 / px),
                      start_angle=float(params.phi0), angle_increment=phistep,
                      sensor_thickness_mm=truth.panels[0].thickness,
                      polarization_fraction=truth.beam.polarization_fraction))
