"""Corruption models (spec §2.4–2.7): every function maps a clean :class:`~lidar_robust.formats.Scan` (points,
raw labels, ring ids of the clean scan) and a numpy ``Generator`` to ``(corrupted scan, info)``; all are
vectorised and seeded. :mod:`lidar_robust.corruptions.registry` names the SemanticKITTI-C and Robo3D sets."""
