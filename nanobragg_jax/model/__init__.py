"""The experiment model: frozen pytrees a crystallographer recognises, and their lowering.

  Model(crystal, beam, detector, goniometer, mosaicity, water, dmin)
  Crystal, StructureFactors, Mosaicity      the sample
  Beam, Divergence, Spectrum                 the incident beam
  Detector, Panel, NanoBraggPanel, Sensor    the detector
  Goniometer                                 the spindle and φ ticks
  lower(model) -> (Setup, Params)            what the kernel takes
  lower_panels(model) -> (Setup, Params, PanelStack)   a detector of several panels
"""

from .beam import Beam, Divergence, Spectrum
from .crystal import Crystal, Mosaicity, StructureFactors
from .detector import CONVENTION_VECTORS, Detector, NanoBraggPanel, Panel, Sensor, convention_vector
from .experiment_model import Model
from .goniometer import Goniometer
from .lower import divergence_raster, lower, lower_panels, oversample_rule, recommended_oversample

__all__ = [
    "Beam", "CONVENTION_VECTORS", "Crystal", "Detector", "Divergence", "Goniometer", "Model", "Mosaicity",
    "NanoBraggPanel", "Panel", "Sensor", "Spectrum", "StructureFactors", "convention_vector",
    "divergence_raster", "lower", "lower_panels", "oversample_rule", "recommended_oversample",
]
