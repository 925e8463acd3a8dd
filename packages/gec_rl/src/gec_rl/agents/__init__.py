"""Agents and the registry that builds them from a spec string such as ``ops_mb:eta=0.5:M=16``.

The registry names its classes as ``"module:Class"`` strings and imports one only when it is built, so numpy
agents never import torch (``ops_linear_lmc`` is written in torch).
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from gec_rl.agents.base import Agent, Task
from paperlab_core.errors import ConfigError

#: agent id → ``"module:factory"`` (imported on first use)
REGISTRY: dict[str, str] = {
    "ops_mb": "gec_rl.agents.model_based:OPSModelBased",
    "psrl": "gec_rl.agents.model_based:PSRL",
    "max_of_j": "gec_rl.agents.model_based:max_of_j",
    "ucbvi": "gec_rl.agents.model_based:UCBVI",
    "eps_greedy_q": "gec_rl.agents.baselines:EpsGreedyQ",
    "ops_mf": "gec_rl.agents.model_free:OPSModelFree",
    "ops_linear_lmc": "gec_rl.agents.linear:OPSLinearLMC",
    "opsrl": "gec_rl.agents.model_based:OPSRL",
}

AGENT_NAMES = tuple(REGISTRY)


def agent_factory(name: str) -> Any:
    """The class (or factory function) registered as ``name``."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown agent {name!r} (supported: {', '.join(AGENT_NAMES)})")
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in {"inf", "infinity"}:
        return math.inf
    if lowered in {"true", "false"}:
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_agent_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ops_mb:eta=0.5:M=16"`` → ``("ops_mb", {"eta": 0.5, "M": 16})``."""
    name, *options = spec.split(":")
    kwargs: dict[str, Any] = {}
    for option in options:
        if "=" not in option:
            raise ConfigError(f"agent option {option!r} in {spec!r} must look like key=value")
        key, value = option.split("=", 1)
        kwargs[key] = _parse_value(value)
    return name, kwargs


def check_agent_spec(spec: str) -> str:
    """The agent id of ``spec``; raises :class:`ConfigError` for an unknown id or a malformed option."""
    name, _ = parse_agent_spec(spec)
    if name not in REGISTRY:
        raise ConfigError(f"unknown agent {name!r} (supported: {', '.join(AGENT_NAMES)})")
    return name


def make_agent(spec: str, task: Task, rng: np.random.Generator, **overrides: Any) -> Agent:
    """Build an agent from a spec string; unknown names, options or invalid values raise :class:`ConfigError`."""
    name, kwargs = parse_agent_spec(spec)
    factory = agent_factory(name)
    kwargs = {**overrides, **kwargs}
    try:
        return factory(task, rng, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # unknown keyword or an invalid hyper-parameter value
        raise ConfigError(f"agent {spec!r}: {err}") from err


__all__ = ["AGENT_NAMES", "REGISTRY", "Agent", "Task", "agent_factory", "check_agent_spec", "make_agent"]
