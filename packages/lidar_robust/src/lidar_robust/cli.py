"""``lidar-robust`` entry point (under construction)."""

from __future__ import annotations

from paperlab_core.cli import build_cli

main = build_cli("lidar_robust", description="SemanticKITTI-C: LiDAR segmentation robustness benchmark, corruption toolkit and robust model", verbs=[])
