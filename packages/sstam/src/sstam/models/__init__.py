"""nn.Modules of the detectors (no training logic): spatial CNNs (timm) and temporal TimeSformers (transformers)."""

from sstam.models.spatial import SpatialDetector
from sstam.models.temporal import SplitTemporalDetector, TemporalDetector, build_temporal

__all__ = ["SpatialDetector", "SplitTemporalDetector", "TemporalDetector", "build_temporal"]
