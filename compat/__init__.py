"""compat: the PyTorch port's API (``nanobrag_torch``) over the JAX core.

Switch a script from the port by changing its imports::

    from nanobrag_torch.config import CrystalConfig, DetectorConfig, BeamConfig
    from nanobrag_torch.models.crystal import Crystal
    from nanobrag_torch.models.detector import Detector
    from nanobrag_torch.simulator import Simulator

becomes ``from compat.config import …``, ``from compat.models.crystal import Crystal``,
``from compat.models.detector import Detector``, ``from compat.simulator import Simulator``
(everything is also importable from ``compat``).  ``Simulator(...).run()`` returns the
core's image (``nanobragg_jax.simulate``); ``jax.grad`` replaces ``requires_grad`` +
``backward()``, and with PyTorch installed torch tensors work too.  See docs/migration.md.
"""

from .config import (
    BeamConfig,
    CrystalConfig,
    CrystalShape,
    DetectorConfig,
    DetectorConvention,
    DetectorPivot,
    NoiseConfig,
)
from ._translate import DecisionError
from .models.crystal import Crystal
from .models.detector import Detector
from .simulator import Simulator

__all__ = [
    "BeamConfig",
    "Crystal",
    "CrystalConfig",
    "DecisionError",
    "CrystalShape",
    "Detector",
    "DetectorConfig",
    "DetectorConvention",
    "DetectorPivot",
    "NoiseConfig",
    "Simulator",
]
