"""Helpers under the port's names (``nanobrag_torch.utils``), each evaluating the core's
definition (``nanobragg_jax.physics``, ``geometry``, ``rng``, ``noise``)."""

from .c_random import CLCG, mosaic_rotation_umat, umat2misset
from .geometry import cross_product, dot_product, rotate_axis, unitize
from .physics import polarization_factor, sinc3, sincg

__all__ = [
    "CLCG",
    "cross_product",
    "dot_product",
    "mosaic_rotation_umat",
    "polarization_factor",
    "rotate_axis",
    "sinc3",
    "sincg",
    "umat2misset",
    "dot_product",
    "unitize",
]
