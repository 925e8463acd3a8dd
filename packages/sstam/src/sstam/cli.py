"""``sstam`` entry point (under construction)."""

from __future__ import annotations

from paperlab_core.cli import build_cli

main = build_cli("sstam", description="SSTAM: saliency-aware spatio-temporal artifact measurement for compressed video", verbs=[])
