"""``Model``: one diffraction experiment — crystal, beam, detector, goniometer, mosaicity."""

from __future__ import annotations

from typing import Any, Optional

from ._pytree import as_scalar, model_class, require, set_field
from .beam import Beam
from .crystal import Crystal, Mosaicity
from .detector import Detector
from .goniometer import Goniometer


@model_class
class Model:
    """A complete experiment, as a frozen pytree (``jax.grad``/``vmap``/``jit`` see its leaves).

    Attributes (defaults in brackets):
      crystal: ``Crystal``.
      beam: ``Beam``.  [Beam()]
      detector: ``Detector``.  [Detector.mosflm()]
      goniometer: ``Goniometer``.  [Goniometer()]
      mosaicity: ``Mosaicity``, or None for a perfect crystal.  [None]
      water: thickness (µm) of water in the beam, adding a diffuse background;
        None for none.  [None]
      dmin: resolution limit (Å): scattering beyond it is skipped; None for none.  [None]

    ``nanobragg_jax.simulate(model)`` renders it; ``nanobragg_jax.lower(model)``
    gives the kernel's (Setup, Params).
    """

    crystal: Crystal
    beam: Beam = None  # type: ignore[assignment]
    detector: Detector = None  # type: ignore[assignment]
    goniometer: Goniometer = None  # type: ignore[assignment]
    mosaicity: Optional[Mosaicity] = None
    water: Any = None
    dmin: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.crystal, Crystal):
            raise ValueError("Model.crystal must be a Crystal")
        set_field(self, "beam", Beam() if self.beam is None else self.beam)
        set_field(self, "detector", Detector.mosflm() if self.detector is None else self.detector)
        set_field(self, "goniometer", Goniometer() if self.goniometer is None else self.goniometer)
        for name, cls in (("beam", Beam), ("detector", Detector), ("goniometer", Goniometer)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"Model.{name} must be a {cls.__name__}")
        if self.mosaicity is not None and not isinstance(self.mosaicity, Mosaicity):
            raise ValueError("Model.mosaicity must be a Mosaicity (or None)")
        if self.water is not None:
            set_field(self, "water", as_scalar("Model", "water", self.water))
            require("Model", "water", self.water, lambda a: a >= 0, "≥ 0 (µm)")
        if self.dmin is not None:
            set_field(self, "dmin", as_scalar("Model", "dmin", self.dmin))
            require("Model", "dmin", self.dmin, lambda a: a >= 0, "≥ 0 (Å)")
