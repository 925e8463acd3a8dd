"""Per-level mean bleeding intensity of the shipped bundle on three draws of held-out patches (notebook, session 13).

Run: `HF_HUB_OFFLINE=1 uv run python packages/sstam/docs/bleed_curves.py` (about 1 min on one core).
"""

import numpy as np
import torch
from sstam import reproduce
from sstam.datasets import build_patch_set
from sstam.evaluate import monotonicity_matrix

torch.set_num_threads(1)
model = reproduce._model("default", "cpu")  # the shipped bundle
for seed in (0, 1, 2):
    data = build_patch_set(reproduce.HELDOUT_STILLS, 120, model.engine.pipeline.patch, seed=seed)
    probs = model.engine.spatial_probs(data.patches)
    m, curves = monotonicity_matrix(probs, data.pea, data.level)
    print("seed", seed, "diag", np.diag(m).round(3))
    bleeding = [round(level_means[2], 4) for level_means in curves[2]]  # head 2 on generator 2's levels
    print("  bleeding head on bleeding levels 0-5:", bleeding)
