"""The YAML presets under ``bolt_ssl/configs`` read outside LightningCLI (package verbs, reproduce, bench)."""

from __future__ import annotations

import copy
import importlib.resources
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from bolt_ssl.data import DataConfig
from bolt_ssl.models import ViTConfig
from paperlab_core.errors import ConfigError


def preset_path(name: str) -> Path:
    if Path(name).is_file():
        return Path(name)
    folder = Path(str(importlib.resources.files("bolt_ssl") / "configs"))
    path = folder / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise ConfigError(f"--config {name!r} is neither a file nor a preset (presets: {names})")
    return path


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_preset(name: str = "default") -> dict[str, Any]:
    """``default.yaml`` with the named preset (or YAML file) merged on top, as LightningCLI applies them."""
    config = yaml.safe_load(preset_path("default").read_text(encoding="utf-8"))
    if name != "default":
        config = deep_merge(config, yaml.safe_load(preset_path(name).read_text(encoding="utf-8")) or {})
    return config


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in (values or {}).items() if k in names}


def data_config(preset: dict[str, Any], **overrides: Any) -> DataConfig:
    """The preset's ``data`` section as a :class:`DataConfig`, with non-None ``overrides`` applied."""
    values = _known(DataConfig, preset.get("data", {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DataConfig(**values)


def vit_config(preset: dict[str, Any]) -> ViTConfig:
    return ViTConfig(**_known(ViTConfig, preset.get("model", {}).get("vit", {})))
