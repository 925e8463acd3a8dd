"""Per-batch label targets of weighted CE (lab notebook §9): for the training labels of folds 0–3 of the embedded
benchmark, the weighted label histogram Σ_i w_{y_i} e_{y_i} / Σ_i w_{y_i} of random batches of 16 (what the head's
bias gradient is pulled towards) — its mean and per-class std over 2,000 epochs of batches, for ``ce`` (w = 1)
and ``cb`` (β = 0.999). No training; ≈ 2 min, mostly building the benchmark's sample list.

    PAPERLAB_THREADS=1 python docs/scripts/cb_batch_noise.py
"""

from __future__ import annotations

import numpy as np
from dfme.losses import class_balanced_weights
from dfme.sources import SyntheticSource
from dfme.splits import subject_folds
from dfme.synthetic import SyntheticConfig


def main() -> None:
    samples = SyntheticSource(SyntheticConfig(subjects=60, seed=0)).samples
    labels = np.array([s.label for s in samples])
    folds = subject_folds(np.array([s.subject_id for s in samples]), 10, 0, False, labels)
    rng = np.random.default_rng(0)
    for fold in range(4):
        y = labels[folds != fold]
        counts = np.bincount(y, minlength=7)
        cb = class_balanced_weights(counts, 0.999)
        print(f"fold {fold} counts {counts.tolist()} cb weights {np.round(cb, 2).tolist()}")
        for name, w in (("ce", np.ones(7)), ("cb", cb)):
            targets = []
            for _ in range(2000):
                batches = rng.permutation(len(y))[: len(y) // 16 * 16].reshape(-1, 16)
                for yb in y[batches]:
                    targets.append(np.bincount(yb, weights=w[yb], minlength=7) / w[yb].sum())
            t = np.array(targets)
            share = w.max() / (w.max() + 15 * w.min())
            print(f"  {name}: mean {np.round(t.mean(0), 3).tolist()} std {np.round(t.std(0), 3).tolist()} "
                  f"(max share of one sample in a batch {share:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
