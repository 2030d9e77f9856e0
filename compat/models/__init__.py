"""The port's object models: ``Crystal`` and ``Detector``."""

from .crystal import Crystal
from .detector import Detector

__all__ = ["Crystal", "Detector"]
