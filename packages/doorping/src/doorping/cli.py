"""``doorping`` entry point (under construction)."""

from __future__ import annotations

from paperlab_core.cli import build_cli

main = build_cli("doorping", description="DOORPING: backdoor attacks against dataset distillation (NAIVEATTACK, DOORPING; NDSS 2023)", verbs=[])
