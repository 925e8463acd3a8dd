"""``dfme`` entry point (under construction)."""

from __future__ import annotations

from paperlab_core.cli import build_cli

main = build_cli("dfme", description="DFME: dynamic facial micro-expression recognition benchmark", verbs=[])
