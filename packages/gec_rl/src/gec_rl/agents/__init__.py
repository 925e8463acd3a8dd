"""Agents and the registry that builds them from a spec string such as ``ops_mb:eta=0.5:M=16``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gec_rl.agents.base import Agent, Task
from gec_rl.agents.baselines import EpsGreedyQ
from gec_rl.agents.linear import OPSLinearLMC
from gec_rl.agents.model_based import OPSRL, PSRL, UCBVI, OPSModelBased, max_of_j
from gec_rl.agents.model_free import OPSModelFree

AgentFactory = Callable[..., Agent]


def _registry() -> dict[str, AgentFactory]:
    return {
        "ops_mb": OPSModelBased,
        "psrl": PSRL,
        "max_of_j": max_of_j,
        "ucbvi": UCBVI,
        "eps_greedy_q": EpsGreedyQ,
        "ops_mf": OPSModelFree,
        "ops_linear_lmc": OPSLinearLMC,
        "opsrl": OPSRL,
    }


AGENT_NAMES = ("ops_mb", "psrl", "max_of_j", "ucbvi", "eps_greedy_q", "ops_mf", "ops_linear_lmc", "opsrl")


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
            raise ValueError(f"agent option {option!r} in {spec!r} must look like key=value")
        key, value = option.split("=", 1)
        kwargs[key] = _parse_value(value)
    return name, kwargs


def make_agent(spec: str, task: Task, rng: np.random.Generator, **overrides: Any) -> Agent:
    """Build an agent from a spec string; unknown names or options give a clear error."""
    name, kwargs = parse_agent_spec(spec)
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown agent {name!r}; supported: {', '.join(AGENT_NAMES)}")
    kwargs = {**overrides, **kwargs}
    try:
        return registry[name](task, rng, **kwargs)
    except TypeError as err:
        raise ValueError(f"agent {spec!r}: {err}") from err


__all__ = ["AGENT_NAMES", "PSRL", "UCBVI", "Agent", "EpsGreedyQ", "OPSModelBased", "Task", "make_agent"]
