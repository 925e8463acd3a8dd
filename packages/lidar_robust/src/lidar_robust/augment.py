"""Training augmentations on numpy scans (dicts with ``points`` (N, 4), ``labels`` learning ids, ``ring``).

Standard (both models; 2DPASS-like): random rotation about z, x/y flips, scale 0.95–1.05, translation
N(0, 0.1²). RLSeg-style robustness recipe (our reconstruction, spec §2.11): each scan enters the robust branch
with probability ``share`` (the spec's proposal: 1.0), where each augmentation is applied with probability 0.5:
``mix3d`` (concatenate two independently augmented scans), ``local_jitter`` (20 % of points, σ ~ U(0, 0.2)),
``global_outliers`` (label ignore; ratio ~ U(0, 0.05) as the spec proposes, or log-uniform over
``BENCHMARK_OUTLIER_RATIO`` = [0.001, 0.5], the range of the benchmark's three levels), ``beam_drop`` (keep
every 1st/2nd/4th ring), ``point_subsample`` (keep 1/2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROBUST_AUGMENTATIONS = ("mix3d", "local_jitter", "global_outliers", "beam_drop", "point_subsample")


def _take(sample: dict, index: np.ndarray) -> dict:
    return {k: (v[index] if isinstance(v, np.ndarray) and len(v) == len(sample["points"]) else v)
            for k, v in sample.items()}  # fmt: skip


def standard(sample: dict, rng: np.random.Generator) -> dict:
    points = sample["points"].copy()
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    xy = points[:, :2] @ np.array([[c, s], [-s, c]], dtype=np.float32)
    if rng.random() < 0.5:
        xy[:, 0] = -xy[:, 0]
    if rng.random() < 0.5:
        xy[:, 1] = -xy[:, 1]
    points[:, :2] = xy
    points[:, :3] *= rng.uniform(0.95, 1.05)
    points[:, :3] += rng.normal(0.0, 0.1, size=3).astype(np.float32)
    return {**sample, "points": points}


def local_jitter(sample: dict, rng: np.random.Generator) -> dict:
    points = sample["points"].copy()
    n = len(points)
    index = rng.choice(n, size=int(round(0.2 * n)), replace=False)
    points[index, :3] += rng.normal(0.0, rng.uniform(0.0, 0.2), size=(len(index), 3)).astype(np.float32)
    return {**sample, "points": points}


#: the spec's proposal: ratio ~ U(0, 0.05); ``(low, high)`` with low > 0 samples log-uniformly instead
SPEC_OUTLIER_RATIO = (0.0, 0.05)
#: the benchmark's global-outlier levels span 0.001 (light) to 0.5 (heavy) of the scan's points
BENCHMARK_OUTLIER_RATIO = (1e-3, 0.5)


def outlier_ratio(rng: np.random.Generator, bounds: tuple[float, float] = SPEC_OUTLIER_RATIO) -> float:
    """U(0, high) when ``low == 0``, else log-uniform on [low, high]."""
    low, high = bounds
    if not 0.0 <= low < high:
        raise ValueError(f"outlier ratio bounds must satisfy 0 <= low < high, got {bounds}")
    if low == 0.0:
        return float(rng.uniform(0.0, high))
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def global_outliers(sample: dict, rng: np.random.Generator,
                    bounds: tuple[float, float] = SPEC_OUTLIER_RATIO) -> dict:  # fmt: skip
    """Append ``round(ratio·N)`` points uniform in the (augmented) scan's bounding box, label ignore, ring −1."""
    points = sample["points"]
    n_new = int(round(outlier_ratio(rng, bounds) * len(points)))
    low, high = points[:, :3].min(0), points[:, :3].max(0)
    extra = np.concatenate([rng.uniform(low, high, (n_new, 3)), rng.uniform(0, 1, (n_new, 1))], 1).astype(
        np.float32
    )
    return {
        **sample,
        "points": np.concatenate([points, extra]),
        "labels": np.concatenate([sample["labels"], np.zeros(n_new, sample["labels"].dtype)]),
        "ring": np.concatenate([sample["ring"], np.full(n_new, -1, sample["ring"].dtype)]),
    }


def beam_drop(sample: dict, rng: np.random.Generator) -> dict:
    step = int(rng.choice([1, 2, 4]))
    keep = (sample["ring"] >= 0) & (sample["ring"] % step == rng.integers(step))
    return _take(sample, np.flatnonzero(keep))


def point_subsample(sample: dict, rng: np.random.Generator) -> dict:
    n = len(sample["points"])
    return _take(sample, np.sort(rng.choice(n, size=n // 2, replace=False)))


def mix3d(a: dict, b: dict) -> dict:
    """Mix3D (Nekrasov et al. 2021): the union of two (independently augmented) scans."""
    return {k: np.concatenate([a[k], b[k]]) for k in ("points", "labels", "ring")}


def augment_batch(samples: Sequence[dict], rng: np.random.Generator, robust: Sequence[str] = (),
                  probability: float = 0.5, outlier_bounds: tuple[float, float] = SPEC_OUTLIER_RATIO,
                  share: float = 1.0) -> list[dict]:  # fmt: skip
    """Standard augmentation of every scan; then, for a scan drawn into the robust branch (probability
    ``share``), the robust ones (each with ``probability``). ``share = 1`` draws nothing for the branch, so the
    random stream equals the spec recipe's."""
    unknown = set(robust) - set(ROBUST_AUGMENTATIONS)
    if unknown:
        raise ValueError(
            f"unknown augmentations {sorted(unknown)} (expected {', '.join(ROBUST_AUGMENTATIONS)})"
        )
    out, active = [], []
    for sample in samples:
        sample = standard(sample, rng)
        robust_branch = bool(robust) and (share >= 1.0 or rng.random() < share)
        active.append(robust_branch)
        for name, func in (("beam_drop", beam_drop), ("point_subsample", point_subsample),
                           ("local_jitter", local_jitter), ("global_outliers", global_outliers)):  # fmt: skip
            if robust_branch and name in robust and rng.random() < probability:
                sample = func(sample, rng, outlier_bounds) if name == "global_outliers" else func(sample, rng)
        out.append(sample)
    if "mix3d" in robust and len(out) > 1:
        partners = [standard(s, rng) for s in out[1:] + out[:1]]
        out = [mix3d(s, p) if on and rng.random() < probability else s
               for s, p, on in zip(out, partners, active, strict=True)]  # fmt: skip
    return out
