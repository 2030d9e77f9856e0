"""compat with PyTorch: the port's torch scripts, with only the imports changed.

Skipped when torch is not installed (it is the optional ``torch`` extra).  The scripts
below are the port's gradient tests (tests/test_gradients.py there: the gradient-flow
case and the DBEX wavelength / fluence / distance cases) on small detectors; their
``.grad`` must equal ``jax.grad`` of the same computation written with JAX values.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")

from compat import _torch_bridge  # noqa: E402
from compat.config import BeamConfig, CrystalConfig, DetectorConfig  # noqa: E402
from compat.models.crystal import Crystal  # noqa: E402
from compat.models.detector import Detector  # noqa: E402
from compat.simulator import Simulator  # noqa: E402

DEVICE = torch.device("cpu")
DTYPE = torch.float64


@pytest.fixture(autouse=True, scope="module")
def jax_results_for_plain_numbers():
    """The reference computations below pass plain numbers and expect JAX arrays; with torch
    imported they would otherwise get torch tensors (compat._arrays)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NANOBRAGG_COMPAT_ARRAYS", "jax")
    yield
    mp.undo()


def port_dbex_run(wavelength, fluence, distance, spixels=16, post_override=False):
    """The port's DBEX scripts (test_wavelength/fluence/distance_gradient_at_init and
    test_distance_post_override_gradient), parameterised by which values are tensors."""
    crystal_config = CrystalConfig(
        cell_a=100.0, cell_b=100.0, cell_c=100.0,
        cell_alpha=90.0, cell_beta=90.0, cell_gamma=90.0,
        N_cells=(5, 5, 5), default_F=100.0,
    )
    if post_override:
        detector_config = DetectorConfig(distance_mm=100.0, pixel_size_mm=0.1, spixels=spixels, fpixels=spixels)
        detector = Detector(config=detector_config, device=DEVICE, dtype=DTYPE)
        detector_config.distance_mm = distance
    else:
        detector_config = DetectorConfig(distance_mm=distance, pixel_size_mm=0.1, spixels=spixels, fpixels=spixels)
        detector = Detector(config=detector_config, device=DEVICE, dtype=DTYPE)
    beam_config = BeamConfig(wavelength_A=wavelength, fluence=fluence)
    crystal = Crystal(config=crystal_config, device=DEVICE, dtype=DTYPE)
    simulator = Simulator(
        crystal=crystal, detector=detector,
        crystal_config=crystal_config, beam_config=beam_config,
        device=DEVICE, dtype=DTYPE,
    )
    return simulator.run()


def central_difference(f, x0, h):
    return (float(f(x0 + h)) - float(f(x0 - h))) / (2 * h)


def test_run_returns_a_torch_tensor_equal_to_the_jax_image():
    image = port_dbex_run(6.2, 1e28, 100.0)
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float64 and image.shape == (16, 16)
    assert not image.requires_grad
    cc = CrystalConfig(N_cells=(5, 5, 5), default_F=100.0)
    jax_image = Simulator(Crystal(cc), Detector(DetectorConfig(spixels=16, fpixels=16)), cc,
                          BeamConfig(wavelength_A=6.2, fluence=1e28)).run()
    np.testing.assert_allclose(image.numpy(), np.asarray(jax_image), rtol=1e-12)


@pytest.mark.parametrize("which", ["wavelength", "fluence", "distance", "distance_post_override"])
def test_port_dbex_backward_matches_central_difference(which):
    values = {"wavelength": 6.2, "fluence": 1e28, "distance": 100.0}
    key = which.replace("_post_override", "")
    tensor = torch.tensor(values[key], dtype=DTYPE, requires_grad=True)
    values[key] = tensor
    result = port_dbex_run(values["wavelength"], values["fluence"], values["distance"],
                           post_override=which.endswith("post_override"))
    assert result.requires_grad
    loss = result.sum()
    loss.backward()
    assert tensor.grad is not None and float(tensor.grad) != 0.0

    def loss(x):  # plain numbers: the JAX path
        v = dict(values, **{key: x})
        return port_dbex_run(v["wavelength"], v["fluence"], v["distance"]).sum()

    x0 = {"wavelength": 6.2, "fluence": 1e28, "distance": 100.0}[key]
    h = {"wavelength": 1e-6, "fluence": 1e22, "distance": 1e-4}[key]
    assert float(tensor.grad) == pytest.approx(central_difference(loss, x0, h), rel=1e-5)


def test_port_gradient_flow_script():
    """The port's test_gradient_flow_simulation, on a 16×16 detector."""
    dtype = torch.float64
    cell_a = torch.tensor(100.0, dtype=dtype, requires_grad=True)
    cell_b = torch.tensor(100.0, dtype=dtype, requires_grad=True)
    cell_c = torch.tensor(100.0, dtype=dtype, requires_grad=True)
    cell_alpha = torch.tensor(90.0, dtype=dtype, requires_grad=True)
    cell_beta = torch.tensor(90.0, dtype=dtype, requires_grad=True)
    cell_gamma = torch.tensor(90.0, dtype=dtype, requires_grad=True)
    config = CrystalConfig(cell_a=cell_a, cell_b=cell_b, cell_c=cell_c, cell_alpha=cell_alpha,
                           cell_beta=cell_beta, cell_gamma=cell_gamma, mosaic_spread_deg=0.0, mosaic_domains=1,
                           N_cells=(5, 5, 5), default_F=100.0)
    crystal = Crystal(config=config, device=DEVICE, dtype=dtype)
    detector = Detector(DetectorConfig(spixels=16, fpixels=16, oversample=1), device=DEVICE, dtype=dtype)
    simulator = Simulator(crystal, detector, crystal_config=config, device=DEVICE, dtype=dtype)
    image = simulator.run()
    loss = image.sum()
    assert image.requires_grad
    loss.backward()
    grads = np.array([float(t.grad) for t in (cell_a, cell_b, cell_c, cell_alpha, cell_beta, cell_gamma)])
    assert np.any(np.abs(grads) > 1e-10)

    def loss(cell):  # plain numbers: the JAX path
        cc = CrystalConfig(cell_a=cell[0], cell_b=cell[1], cell_c=cell[2], cell_alpha=cell[3], cell_beta=cell[4],
                           cell_gamma=cell[5], N_cells=(5, 5, 5), default_F=100.0)
        return Simulator(Crystal(cc), Detector(DetectorConfig(spixels=16, fpixels=16, oversample=1)), cc).run().sum()

    x0 = np.array([100.0, 100.0, 100.0, 90.0, 90.0, 90.0])
    fd = np.array([central_difference(lambda v: loss(np.where(np.arange(6) == i, v, x0)), x0[i], 1e-4)
                   for i in range(6)])
    np.testing.assert_allclose(grads, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_torch_gradcheck_wavelength():
    """The port's test_wavelength_gradcheck, with torch.autograd.gradcheck itself."""
    wavelength = torch.tensor(6.2, dtype=torch.float64, requires_grad=True)

    def loss_fn(wavelength_param):
        return port_dbex_run(wavelength_param, 1e28, 100.0).sum()

    assert torch.autograd.gradcheck(loss_fn, (wavelength,), eps=1e-6, atol=1e-5, rtol=0.05, raise_exception=True)


def test_crystal_and_detector_properties_are_differentiable_tensors():
    a = torch.tensor(70.0, dtype=torch.float64, requires_grad=True)
    crystal = Crystal(CrystalConfig(cell_a=a, cell_b=80.0, cell_c=90.0, cell_alpha=75.0, cell_beta=85.0,
                                    cell_gamma=95.0), device=DEVICE, dtype=torch.float64)
    V = crystal.V
    assert isinstance(V, torch.Tensor) and V.requires_grad
    V.backward()
    assert float(a.grad) == pytest.approx(float(V.detach()) / 70.0, rel=1e-12)  # V ∝ a
    vecs = crystal.compute_cell_tensors()
    assert set(vecs) == {"a", "b", "c", "a_star", "b_star", "c_star", "V"}
    assert all(isinstance(v, torch.Tensor) for v in vecs.values())
    (ra, _, _), (rsa, _, _) = crystal.get_rotated_real_vectors(crystal.config)
    assert tuple(ra.shape) == (1, 1, 3) and isinstance(rsa, torch.Tensor)

    distance = torch.tensor(120.0, dtype=torch.float64, requires_grad=True)
    det = Detector(DetectorConfig(distance_mm=distance, spixels=8, fpixels=8), device=DEVICE, dtype=torch.float64)
    assert det.distance.requires_grad and float(det.distance.detach()) == pytest.approx(0.12)
    pix0 = det.pix0_vector
    pix0[0].backward()
    assert float(distance.grad) == pytest.approx(1e-3)  # beam pivot: pix0·x = distance
    coords = det.get_pixel_coords()
    assert tuple(coords.shape) == (8, 8, 3) and coords.dtype == torch.float64


def test_float32_default_and_integer_tensors():
    cc = CrystalConfig(N_cells=torch.tensor([5, 5, 5]), default_F=100.0)
    sim = Simulator(Crystal(cc), Detector(DetectorConfig(spixels=16, fpixels=16)), cc,
                    BeamConfig(wavelength_A=torch.tensor(6.2), fluence=1e28))
    image = sim.run()  # torch's default dtype, as the port
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    ref = port_dbex_run(6.2, 1e28, 100.0)
    np.testing.assert_allclose(image.numpy(), ref.numpy(), rtol=2e-4, atol=1e-6 * float(ref.max()))


def test_dlpack_transfers_do_not_copy_on_cpu():
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    a = _torch_bridge.to_jax(t)
    assert a.unsafe_buffer_pointer() == t.data_ptr()
    b = jnp.arange(8, dtype=jnp.float64) * 2.0
    u = _torch_bridge.to_torch(b)
    assert u.data_ptr() == b.unsafe_buffer_pointer()
    np.testing.assert_array_equal(u.numpy(), np.asarray(b))


def test_plain_numbers_give_torch_results_when_torch_is_imported(monkeypatch):
    """The port's scripts pass plain numbers and use torch on the results; JAX values in
    still give JAX results; NANOBRAGG_COMPAT_ARRAYS overrides the default."""
    monkeypatch.delenv("NANOBRAGG_COMPAT_ARRAYS", raising=False)
    cc = CrystalConfig(N_cells=(2, 2, 2), default_F=100.0)
    dc = DetectorConfig(spixels=8, fpixels=8, oversample=1)
    sim = Simulator(Crystal(cc), Detector(dc), crystal_config=cc, beam_config=BeamConfig())
    image = sim.run()
    assert isinstance(image, torch.Tensor) and bool(torch.isfinite(image).all())

    from compat.utils.physics import sincg
    assert isinstance(sincg(torch.tensor(0.3), torch.tensor(5.0)), torch.Tensor)
    assert isinstance(jax.grad(lambda x: sincg(x, 5.0))(0.3), jax.Array)

    monkeypatch.setenv("NANOBRAGG_COMPAT_ARRAYS", "jax")
    assert isinstance(sim.run(), jax.Array)


def test_port_module_names_resolve_to_compat(tmp_path):
    """The port-suite runner's alias: nanobrag_torch.* is compat.* (same module objects)."""
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "port_suite"))
    try:
        alias = importlib.import_module("nanobrag_alias")
        alias.install()
        port_io = importlib.import_module("nanobrag_torch.io.hkl")
        import compat.io.hkl

        assert port_io is compat.io.hkl
        hkl = tmp_path / "t.hkl"
        hkl.write_text("0 0 0 10\n1 0 0 20\n")
        grid, meta = port_io.read_hkl_file(str(hkl), dtype=torch.float64)
        assert isinstance(grid, torch.Tensor) and grid.shape == (2, 1, 1) and meta["h_max"] == 1
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "AliasFinder"]
        for name in [n for n in sys.modules if n.startswith("nanobrag_torch")]:
            del sys.modules[name]
        sys.path.remove(str(Path(__file__).parent / "port_suite"))
