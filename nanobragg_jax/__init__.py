"""nanobragg-jax: nanoBragg's perfect-lattice nanocrystal diffraction simulator in JAX.

Public surface:
  from_cli_args(argv) -> Experiment     parse the C program's flags (and files)
  simulate(setup, params) -> Array      the image in photons per pixel
  Setup, Params, Experiment             the static and differentiable configuration
  simulate_shots(setup, params, shots)  a batch of still shots (n, S, F) (shots branch)
"""

from .config import Experiment, Params, Setup
from .experiment import derived_geometry, from_cli_args
from .flags import FlagError
from .simulate import simulate

# shots branch: batched shots and spectra (import the modules: nanobragg_jax.shots / .spectra)
from .shots import Shots, random_shots, simulate_shots  # noqa: E402
from .spectra import Spectrum  # noqa: E402

__all__ = ["Experiment", "FlagError", "Params", "Setup", "derived_geometry", "from_cli_args", "simulate",
           "Shots", "Spectrum", "random_shots", "simulate_shots"]
__version__ = "0.1.0"
