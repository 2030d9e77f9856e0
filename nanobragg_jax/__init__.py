"""nanobragg-jax: nanoBragg's perfect-lattice nanocrystal diffraction simulator in JAX.

Public surface:
  from_cli_args(argv) -> Experiment     parse the C program's flags (and files)
  simulate(setup, params) -> Array      the image in photons per pixel
  Setup, Params, Experiment             the static and differentiable configuration
  simulate_pixels(setup, params, s, f)  photons at listed pixels (shoeboxes)
  predict_spots, shoeboxes              Bragg spots of a still, pixels around them
"""

from .config import Experiment, Params, Setup
from .experiment import derived_geometry, from_cli_args
from .flags import FlagError
from .simulate import simulate

# refine branch: sparse pixels, spot prediction (parameterisations: nanobragg_jax.refine)
from .pixels import simulate_pixels
from .spots import predict_spots, shoeboxes

__all__ = ["Experiment", "FlagError", "Params", "Setup", "derived_geometry", "from_cli_args", "simulate",
           "simulate_pixels", "predict_spots", "shoeboxes"]
__version__ = "0.1.0"
