"""nanobragg-jax: nanoBragg's perfect-lattice nanocrystal diffraction simulator in JAX.

Public surface:
  Model(crystal, beam, detector, ...)   a typed experiment (frozen pytrees, see nanobragg_jax.model)
  simulate(model) -> Array              the image in photons per pixel (also simulate(setup, params))
  lower(model) -> (Setup, Params)       the kernel's static and differentiable configuration
  from_cli_args(argv) -> Experiment     the C program's flags (and files) → model → Setup, Params
"""

from .config import Experiment, Params, Setup
from .experiment import derived_geometry, from_cli_args
from .flags import FlagError
from .simulate import simulate

# model branch: the typed experiment model and its lowering
from .model import (Beam, Crystal, Detector, Divergence, Goniometer, Model, Mosaicity, NanoBraggPanel,
                    Panel, Sensor, Spectrum, StructureFactors, lower, recommended_oversample)

__all__ = [
    "Experiment", "FlagError", "Params", "Setup", "derived_geometry", "from_cli_args", "simulate",
    # model branch
    "Beam", "Crystal", "Detector", "Divergence", "Goniometer", "Model", "Mosaicity", "NanoBraggPanel",
    "Panel", "Sensor", "Spectrum", "StructureFactors", "lower", "recommended_oversample",
]
__version__ = "0.1.0"
