"""Demonstrations: recording with execution noise, planted corruption, and the ``.npz`` file format (spec §2.2, §3b).

File format (one ``.npz``):

* ``obs``      (D, T, *obs_shape) float32/float64 (classic control) or uint8 (Atari stacks),
* ``actions``  (D, T) int64, the env's own action ids (action 0 is an ordinary label),
* ``valid``    (D, T) bool, False on padding of variable-length episodes (padding is never used),
* ``returns``  (D,) float64, return of each recorded demonstration,
* ``env_id``   0-d unicode string,
* ``meta``     0-d unicode string holding JSON (recording settings; ``block`` if planted),
* ``corrupted`` (D, B) bool, optional: ground truth of a planted run (True = labels flipped in that block).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.errors import ConfigError, MissingFileError
from paperlab_core.logging import atomic_open
from r2rise.envs import Expert, env_spaces, expert_for, make_env

REQUIRED_FIELDS = ("obs", "actions", "valid", "returns", "env_id")


class DemoFormatError(ConfigError):
    """A demonstrations file or object does not match the package format."""


@dataclass
class Demonstrations:
    """D demonstrations of at most T frames each; a frame is an (observation, action) pair."""

    obs: np.ndarray
    actions: np.ndarray
    valid: np.ndarray
    returns: np.ndarray
    env_id: str
    meta: dict[str, Any] = field(default_factory=dict)
    corrupted: np.ndarray | None = None

    @property
    def num_demos(self) -> int:
        return int(self.actions.shape[0])

    @property
    def length(self) -> int:
        return int(self.actions.shape[1])

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.obs.shape[2:])

    def frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flattened valid frames: obs (F, *obs_shape), actions (F,), flat index (F,) into D·T."""
        flat = np.flatnonzero(self.valid.reshape(-1))
        obs = self.obs.reshape(-1, *self.obs_shape)[flat]
        return obs, self.actions.reshape(-1)[flat], flat

    def validate(self, env_id: str | None = None, check_env: bool = True) -> Demonstrations:
        """Check shapes, dtypes, action range and env id; raise ``DemoFormatError`` naming the field."""
        validate_arrays(
            {
                "obs": self.obs,
                "actions": self.actions,
                "valid": self.valid,
                "returns": self.returns,
                "env_id": np.asarray(self.env_id),
                **({} if self.corrupted is None else {"corrupted": self.corrupted}),
            },
            expected_env=env_id,
            check_env=check_env,
            block=self.meta.get("block"),
        )
        return self


def _fail(source: str, name: str, message: str) -> DemoFormatError:
    return DemoFormatError(f"{source}: field '{name}' {message}")


def validate_arrays(
    arrays: dict[str, np.ndarray],
    expected_env: str | None = None,
    check_env: bool = True,
    block: int | None = None,
    source: str = "demonstrations",
) -> None:
    """Validate the package format (see the module docstring); one-line errors that name the field."""
    for name in REQUIRED_FIELDS:
        if name not in arrays:
            raise _fail(source, name, f"is missing (required fields: {', '.join(REQUIRED_FIELDS)})")
    obs, actions, valid, returns = (arrays[k] for k in ("obs", "actions", "valid", "returns"))
    env_id = str(arrays["env_id"])
    if actions.ndim != 2:
        raise _fail(source, "actions", f"must have shape (D, T), got {actions.shape}")
    if not np.issubdtype(actions.dtype, np.integer):
        raise _fail(source, "actions", f"must be an integer array, got dtype {actions.dtype}")
    num_demos, length = actions.shape
    if num_demos == 0 or length == 0:
        raise _fail(source, "actions", f"is empty (shape {actions.shape})")
    if obs.ndim < 3 or obs.shape[:2] != actions.shape:
        raise _fail(
            source, "obs", f"must have shape (D, T, ...) = {actions.shape} + obs shape, got {obs.shape}"
        )
    if not (obs.dtype == np.uint8 or np.issubdtype(obs.dtype, np.floating)):
        raise _fail(source, "obs", f"must be uint8 or floating point, got dtype {obs.dtype}")
    if valid.shape != actions.shape:
        raise _fail(source, "valid", f"must have shape {actions.shape}, got {valid.shape}")
    if valid.dtype != np.bool_:
        raise _fail(source, "valid", f"must be bool, got dtype {valid.dtype}")
    if not valid.any():
        raise _fail(source, "valid", "marks no frame as valid")
    if returns.shape != (num_demos,):
        raise _fail(source, "returns", f"must have shape ({num_demos},), got {returns.shape}")
    if expected_env is not None and env_id != expected_env:
        raise _fail(source, "env_id", f"is {env_id!r} but {expected_env!r} was expected")
    if check_env:
        try:
            obs_shape, num_actions = env_spaces(env_id)
        except ValueError as err:
            raise _fail(source, "env_id", str(err)) from err
        if tuple(obs.shape[2:]) != obs_shape:
            raise _fail(
                source, "obs", f"has per-frame shape {tuple(obs.shape[2:])}, {env_id} gives {obs_shape}"
            )
        used = actions[valid]
        if used.min() < 0 or used.max() >= num_actions:
            raise _fail(
                source,
                "actions",
                f"out of range [0, {num_actions}) for {env_id}: min {used.min()}, max {used.max()}",
            )
    if "corrupted" in arrays and block:
        expected = (num_demos, -(-length // int(block)))
        if arrays["corrupted"].shape != expected:
            raise _fail(
                source,
                "corrupted",
                f"must have shape {expected} (D, ceil(T/block)), got {arrays['corrupted'].shape}",
            )


def save_demos(demos: Demonstrations, path: str | os.PathLike[str]) -> Path:
    """Write ``demos`` to ``path`` (.npz) atomically."""
    arrays: dict[str, np.ndarray] = {
        "obs": demos.obs,
        "actions": demos.actions.astype(np.int64),
        "valid": demos.valid.astype(bool),
        "returns": demos.returns.astype(np.float64),
        "env_id": np.asarray(demos.env_id),
        "meta": np.asarray(json.dumps(demos.meta, sort_keys=True)),
    }
    if demos.corrupted is not None:
        arrays["corrupted"] = demos.corrupted.astype(bool)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def resolve_demos_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """A demonstrations file from a user's value: relative paths are taken under ``root`` when given, and a folder
    (an ``r2rise demos`` or ``explain`` run) stands for its ``demos.npz``."""
    resolved = Path(path).expanduser()
    if root is not None and not resolved.is_absolute():
        resolved = Path(root).expanduser() / resolved
    return resolved / "demos.npz" if resolved.is_dir() else resolved


def load_demos(
    path: str | os.PathLike[str], env_id: str | None = None, check_env: bool = True
) -> Demonstrations:
    """Load and validate a demonstrations ``.npz`` (or a folder's ``demos.npz``); errors name the file and the
    field."""
    path = resolve_demos_path(path)
    if not path.is_file():
        raise MissingFileError("demonstrations file", path, "make one with `r2rise demos`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise DemoFormatError(f"{path}: not a readable .npz file ({err})") from err
    meta_raw = str(arrays.get("meta", np.asarray("{}")))
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError as err:
        raise DemoFormatError(f"{path}: field 'meta' is not valid JSON ({err})") from err
    validate_arrays(
        arrays, expected_env=env_id, check_env=check_env, block=meta.get("block"), source=str(path)
    )
    return Demonstrations(
        obs=arrays["obs"],
        actions=arrays["actions"].astype(np.int64),
        valid=arrays["valid"],
        returns=arrays["returns"].astype(np.float64),
        env_id=str(arrays["env_id"]),
        meta=meta,
        corrupted=arrays.get("corrupted"),
    )


def record_demonstrations(
    env_id: str = "CartPole-v1",
    num_demos: int = 5,
    length: int | None = 200,
    exec_noise: float = 0.1,
    seed: int = 0,
    expert: Expert | None = None,
    max_attempts: int = 20,
) -> Demonstrations:
    """Record ``num_demos`` expert demonstrations with execution noise ε_exec (spec §2.2).

    The executed action is uniformly random with probability ``exec_noise``; the recorded label stays the expert's
    action. With ``length`` set, a demonstration is the first ``length`` frames of an episode; episodes ending
    earlier are discarded and re-collected with the next seed (as the official code does), and after
    ``max_attempts`` failures the shorter episode is kept and padded (``valid`` False). With ``length=None`` a
    demonstration is one full episode, padded to the longest one.
    """
    expert = expert or expert_for(env_id)
    rng = np.random.default_rng(seed)
    env = make_env(env_id)
    episodes: list[tuple[np.ndarray, np.ndarray, float]] = []
    episode_seed = seed * 10_000
    try:
        num_actions = int(env.action_space.n)
        for _ in range(num_demos):
            for attempt in range(max_attempts):
                obs, _ = env.reset(seed=episode_seed)
                episode_seed += 1
                observations, labels, total = [], [], 0.0
                while length is None or len(labels) < length:
                    label = int(expert(obs))
                    executed = int(rng.integers(num_actions)) if rng.random() < exec_noise else label
                    observations.append(np.asarray(obs))
                    labels.append(label)
                    obs, reward, terminated, truncated, _ = env.step(executed)
                    total += float(reward)
                    if terminated or truncated:
                        break
                if length is None or len(labels) == length or attempt == max_attempts - 1:
                    episodes.append((np.stack(observations), np.asarray(labels, dtype=np.int64), total))
                    break
    finally:
        env.close()
    horizon = length or max(len(ep[1]) for ep in episodes)
    obs_shape = episodes[0][0].shape[1:]
    obs_arr = np.zeros((num_demos, horizon, *obs_shape), dtype=episodes[0][0].dtype)
    actions = np.zeros((num_demos, horizon), dtype=np.int64)
    valid = np.zeros((num_demos, horizon), dtype=bool)
    for d, (ep_obs, ep_actions, _) in enumerate(episodes):
        n = len(ep_actions)
        obs_arr[d, :n], actions[d, :n], valid[d, :n] = ep_obs, ep_actions, True
    meta = {"num_demos": num_demos, "length": length, "exec_noise": exec_noise, "seed": seed}
    returns = np.asarray([ep[2] for ep in episodes], dtype=np.float64)
    return Demonstrations(obs_arr, actions, valid, returns, env_id, meta)


def plant_corruption(
    demos: Demonstrations, corrupt_frac: float, block: int = 10, seed: int = 0, num_actions: int | None = None
) -> Demonstrations:
    """Flip the action labels of each ``block``-frame block independently with probability ``corrupt_frac``.

    Spec §2.10: for |A| = 2 the label becomes 1 − a; for |A| > 2 a uniformly chosen other action. Returns a new
    object with ``corrupted`` (D, B) as ground truth; only valid frames are changed.
    """
    if not 0.0 <= corrupt_frac <= 1.0:
        raise ConfigError(f"corrupt_frac must be in [0, 1], got {corrupt_frac}")
    if num_actions is None:
        num_actions = env_spaces(demos.env_id)[1]
    rng = np.random.default_rng([seed, 7919])
    num_blocks = -(-demos.length // block)
    corrupted = rng.random((demos.num_demos, num_blocks)) < corrupt_frac
    frame_corrupt = np.repeat(corrupted, block, axis=1)[:, : demos.length] & demos.valid
    actions = demos.actions.copy()
    shift = rng.integers(1, num_actions, size=actions.shape) if num_actions > 2 else 1
    flipped = (actions + shift) % num_actions
    actions[frame_corrupt] = flipped[frame_corrupt]
    meta = {**demos.meta, "corrupt_frac": corrupt_frac, "block": block, "corrupt_seed": seed}
    return Demonstrations(demos.obs, actions, demos.valid, demos.returns, demos.env_id, meta, corrupted)


def make_demos(
    env_id: str = "CartPole-v1",
    num_demos: int = 5,
    length: int | None = 200,
    exec_noise: float = 0.1,
    corrupt_frac: float = 0.0,
    block: int = 10,
    seed: int = 0,
    demonstrator: str | None = None,
) -> Demonstrations:
    """Record demonstrations and (if ``corrupt_frac`` > 0) plant corrupted blocks: the embedded default data."""
    if not 0.0 <= exec_noise <= 1.0:
        raise ConfigError(f"exec_noise must be in [0, 1], got {exec_noise}")
    if not 0.0 <= corrupt_frac <= 1.0:
        raise ConfigError(f"corrupt_frac must be in [0, 1], got {corrupt_frac}")
    if num_demos < 1 or (length is not None and length < 1) or block < 1:
        raise ConfigError(f"need num_demos ≥ 1, length ≥ 1 and block ≥ 1, got {num_demos}, {length}, {block}")
    expert = expert_for(env_id, demonstrator)
    demos = record_demonstrations(env_id, num_demos, length, exec_noise, seed, expert)
    if corrupt_frac > 0:
        demos = plant_corruption(demos, corrupt_frac, block, seed)
    else:
        demos.meta["block"] = block
    return demos
