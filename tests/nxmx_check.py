"""The NXmx field check shared by the tests of every file written with io.nexus.create_nxmx
(``-h5file`` images, ``nanoBragg-shots`` stacks and their virtual master files).

``check_nxmx(f, panels, beam_travel, polarization_normal, n_images)`` asserts what DIALS needs:
NXentry/definition, an NXdata signal whose frame axis leads, NXinstrument/NXbeam/NXdetector,
one NXdetector_module per panel whose ``depends_on`` chain reproduces the panel's origin and
axes (lab frame), and an NXsample whose ``depends_on`` resolves to a rotation.
"""

from __future__ import annotations

import numpy as np

from nanobragg_jax.io.nexus import mcstas_basis


def resolve(f, path: str):
    assert path.startswith("/"), path
    assert path in f, f"depends_on target {path} missing"
    return f[path]


def chain_point(f, ds) -> tuple[np.ndarray, list]:
    """Follow a depends_on chain of translations from dataset ``ds``: the point it maps (0,0,0)
    to, and the list of (vector, value) steps (innermost first)."""
    steps = []
    node = ds
    while True:
        assert node.attrs["transformation_type"] in ("translation", "rotation")
        assert "units" in node.attrs and "vector" in node.attrs
        steps.append((np.asarray(node.attrs["vector"], float), np.asarray(node[()], float)))
        dep = node.attrs["depends_on"]
        dep = dep.decode() if isinstance(dep, bytes) else dep
        if dep == ".":
            break
        node = resolve(f, dep)
    point = sum(v * float(np.ravel(x)[0]) for v, x in steps)
    return point, steps


def nx_class(obj) -> str:
    c = obj.attrs.get("NX_class")
    return c.decode() if isinstance(c, bytes) else c


def text(ds) -> str:
    v = ds[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def check_nxmx(f, panels, beam_travel, polarization_normal, n_images: int, pixel_size: float) -> None:
    """Assert the NXmx structure of the open h5py file ``f`` (see the module docstring).

    ``panels``: dicts with ``origin`` (mm), ``fast`` and ``slow`` (lab frame), ``n_fast``, ``n_slow``.
    """
    basis = mcstas_basis(beam_travel, polarization_normal)
    entry = f["entry"]
    assert nx_class(entry) == "NXentry"
    assert text(entry["definition"]) == "NXmx"
    assert "start_time" in entry
    data = entry["data"]
    assert nx_class(data) == "NXdata" and data.attrs["signal"] == "data"
    ns, nf = panels[0]["n_slow"], panels[0]["n_fast"]
    # NXmx: frame axis first, then the module axis when there are several modules
    lead = (n_images,) if len(panels) == 1 else (n_images, len(panels))
    assert data["data"].shape == lead + (ns, nf)
    inst = entry["instrument"]
    assert nx_class(inst) == "NXinstrument"
    beam = inst["beam"]
    assert nx_class(beam) == "NXbeam"
    assert beam["incident_wavelength"].attrs["units"] == "angstrom"
    assert nx_class(entry["sample"]["beam"]) == "NXbeam"
    det = inst["detector"]
    assert nx_class(det) == "NXdetector"
    resolve(f, text(det["depends_on"]))
    modules = sorted((k for k in det if nx_class(det[k]) == "NXdetector_module"), key=lambda k: int(k[6:]))
    assert len(modules) == len(panels)
    for i, name in enumerate(modules):
        mod = det[name]
        if len(panels) == 1:
            np.testing.assert_array_equal(mod["data_origin"][()], [0, 0])
            np.testing.assert_array_equal(mod["data_size"][()], [ns, nf])
        else:
            np.testing.assert_array_equal(mod["data_origin"][()], [i, 0, 0])
            np.testing.assert_array_equal(mod["data_size"][()], [1, ns, nf])
        origin, _ = chain_point(f, mod["module_offset"])
        assert mod["module_offset"].attrs["units"] == "mm"
        fast = mod["fast_pixel_direction"]
        slow = mod["slow_pixel_direction"]
        assert fast.attrs["depends_on"] == mod.name + "/module_offset"
        assert slow.attrs["depends_on"] == mod.name + "/module_offset"
        assert abs(float(fast[()]) - pixel_size) < 1e-12 and fast.attrs["units"] == "mm"
        # back to the lab frame: the panel's origin and axes
        np.testing.assert_allclose(basis.T @ origin, panels[i]["origin"], atol=1e-9)
        np.testing.assert_allclose(basis.T @ fast.attrs["vector"], panels[i]["fast"], atol=1e-12)
        np.testing.assert_allclose(basis.T @ slow.attrs["vector"], panels[i]["slow"], atol=1e-12)
    # the NeXus frame: z along the beam
    np.testing.assert_allclose(basis @ np.asarray(beam_travel, float) / np.linalg.norm(beam_travel),
                               [0, 0, 1], atol=1e-15)
    sample = entry["sample"]
    assert nx_class(sample) == "NXsample"
    omega = resolve(f, text(sample["depends_on"]))
    assert omega.attrs["transformation_type"] == "rotation" and omega.attrs["units"] == "deg"
    assert omega.shape == (n_images,)
