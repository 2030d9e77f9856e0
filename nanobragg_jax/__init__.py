"""nanobragg-jax: nanoBragg's perfect-lattice nanocrystal diffraction simulator in JAX.

Public surface:
  from_cli_args(argv) -> Experiment     parse the C program's flags (and files)
  simulate(setup, params) -> Array      the image in photons per pixel
  Setup, Params, Experiment             the static and differentiable configuration
  PanelStack, simulate_panels(...)      multi-panel detectors (see docs/panels.md)
"""

from .config import Experiment, Params, Setup
from .experiment import derived_geometry, from_cli_args
from .flags import FlagError
from .simulate import simulate
# panels branch: multi-panel detectors
from .panels import PanelStack, simulate_panels

__all__ = ["Experiment", "FlagError", "Params", "Setup", "derived_geometry", "from_cli_args", "simulate",
           "PanelStack", "simulate_panels"]
__version__ = "0.1.0"
