"""nn.Modules of the detectors (no training logic): spatial CNNs (timm) and temporal TimeSformers (transformers)."""

from sstam.models.spatial import SpatialDetector
from sstam.models.temporal import TemporalDetector

__all__ = ["SpatialDetector", "TemporalDetector"]
