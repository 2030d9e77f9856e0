"""Unit conversions under the port's names (``nanobrag_torch.utils.units``).

Each is one multiplication, so it works on numbers, NumPy, JAX and torch values alike
(and keeps their gradients).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["mm_to_angstroms", "meters_to_angstroms", "degrees_to_radians", "angstroms_to_mm",
           "angstroms_to_meters", "radians_to_degrees", "mm_to_meters", "micrometers_to_meters",
           "mrad_to_radians"]


def mm_to_angstroms(value: Any) -> Any:
    """mm → Å (× 10⁷)."""
    return value * 1e7


def meters_to_angstroms(value: Any) -> Any:
    """m → Å (× 10¹⁰)."""
    return value * 1e10


def angstroms_to_mm(value: Any) -> Any:
    """Å → mm (× 10⁻⁷)."""
    return value * 1e-7


def angstroms_to_meters(value: Any) -> Any:
    """Å → m (× 10⁻¹⁰)."""
    return value * 1e-10


def mm_to_meters(value: Any) -> Any:
    """mm → m."""
    return value * 1e-3


def micrometers_to_meters(value: Any) -> Any:
    """µm → m."""
    return value * 1e-6


def mrad_to_radians(value: Any) -> Any:
    """mrad → rad."""
    return value * 1e-3


def degrees_to_radians(value: Any) -> Any:
    """degrees → radians (× π/180)."""
    return value * (math.pi / 180.0)


def radians_to_degrees(value: Any) -> Any:
    """radians → degrees (× 180/π)."""
    return value * (180.0 / math.pi)
