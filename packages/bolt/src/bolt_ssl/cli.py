"""``bolt`` entry point (under construction)."""

from __future__ import annotations

from paperlab_core.cli import build_cli

main = build_cli("bolt_ssl", description="BOLT: bootstrap own latent of transformer, self-supervised ViTs for medical image classification", verbs=[])
