"""The spindle: rotation axis and the φ ticks of one exposure (deg)."""

from __future__ import annotations

from typing import Any

from ._pytree import as_scalar, as_vector, model_class, require, set_field, static


@model_class
class Goniometer:
    """A single-axis goniometer and the φ sweep of one image.

    Attributes (defaults in brackets):
      axis: (3,) spindle axis in the lab frame (unitised inside), or None for the
        detector convention's (MOSFLM/DENZO +z, XDS/ADXV +x, DIALS +y).  [None]
      phi0: spindle angle of the first tick (deg).  [0]
      phi_step: angle between ticks (deg).  [0]
      phi_steps: ticks summed into the image (static, ≥ 1); the crystal is seen
        at φ0 + k·phi_step, k = 0 … phi_steps − 1.  [1]
    """

    axis: Any = None
    phi0: Any = 0.0
    phi_step: Any = 0.0
    phi_steps: int = static(1)

    def __post_init__(self) -> None:
        if self.axis is not None:
            set_field(self, "axis", as_vector("Goniometer", "axis", self.axis))
            require("Goniometer", "axis", self.axis, lambda a: any(a != 0), "a non-zero vector")
        for name in ("phi0", "phi_step"):
            set_field(self, name, as_scalar("Goniometer", name, getattr(self, name)))
            require("Goniometer", name, getattr(self, name), lambda a: True, "finite")
        if int(self.phi_steps) < 1:
            raise ValueError(f"Goniometer.phi_steps must be ≥ 1, got {self.phi_steps}")
        set_field(self, "phi_steps", int(self.phi_steps))

    @classmethod
    def sweep(cls, start: float, osc: float, steps: int, axis: Any = None) -> "Goniometer":
        """An oscillation of ``osc`` deg from ``start`` in ``steps`` ticks (step = osc/steps)."""
        return cls(axis=axis, phi0=start, phi_step=osc / steps, phi_steps=steps)
