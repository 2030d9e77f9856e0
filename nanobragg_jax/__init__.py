"""nanobragg-jax: nanoBragg's perfect-lattice nanocrystal diffraction simulator in JAX.

Public surface:
  Model(crystal, beam, detector, ...)   a typed experiment (frozen pytrees, see nanobragg_jax.model)
  simulate(model) -> Array              the image in photons per pixel (also simulate(setup, params));
                                        (n_panels, slow, fast) for a detector of several panels
  lower(model) -> (Setup, Params)       the kernel's static and differentiable configuration
  from_cli_args(argv) -> Experiment     the C program's flags (and files) → model → Setup, Params
  PanelStack, simulate_panels           multi-panel detectors (docs/panels.md)
  simulate_pixels(setup, params, s, f)  photons at listed pixels (shoeboxes)
  predict_spots, shoeboxes              Bragg spots of a still, pixels around them
  simulate_shots, random_shots, Shots   batches of still shots with spectra (docs/shots.md)

The names are imported on first use (PEP 562), so ``import nanobragg_jax`` and the
command's ``-h`` do not pay for importing JAX (about 1–3 s); the first use of any export
imports it.
"""

from __future__ import annotations

import importlib
import sys
import types

# name -> submodule that defines it.  (Branches add their exports in one contiguous block.)
_EXPORTS: dict[str, str] = {
    "Experiment": "config",
    "Params": "config",
    "Setup": "config",
    "derived_geometry": "experiment",
    "from_cli_args": "experiment",
    "FlagError": "flags",
    "simulate": "simulate",
    # model branch: the typed experiment model and its lowering
    **{name: "model" for name in (
        "Beam", "Crystal", "Detector", "Divergence", "Goniometer", "Model", "Mosaicity", "NanoBraggPanel",
        "Panel", "Sensor", "Spectrum", "StructureFactors", "lower", "lower_panels", "recommended_oversample")},
    # panels branch: multi-panel detectors (see docs/panels.md)
    "PanelStack": "panels",
    "simulate_panels": "panels",
    # refine branch: sparse pixels, spot prediction (parameterisations: nanobragg_jax.refine)
    "simulate_pixels": "pixels",
    "predict_spots": "spots",
    "shoeboxes": "spots",
    # shots branch: batched still shots (spectrum generators: nanobragg_jax.spectra)
    "Shots": "shots",
    "random_shots": "shots",
    "simulate_shots": "shots",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """Keeps exported functions visible when a submodule of the same name is imported.

    Importing the submodule ``nanobragg_jax.simulate`` makes Python set the package
    attribute ``simulate`` to that module; the export ``simulate`` (the function) must win,
    as it did when this file imported it eagerly.
    """

    def __setattr__(self, name: str, value) -> None:
        if (isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name
                and value.__name__ == f"{__name__}.{name}"):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
