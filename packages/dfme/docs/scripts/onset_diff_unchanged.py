"""0.5.0's ``onset_diff`` (aligned onset frame prepended and subtracted) gives the same predictions as ≤ 0.4.1's
(first sampled frame subtracted) for strategies that start at the onset (lab notebook §20): one fold of the tiny
benchmark (12 subjects, 8×16×16, width 0.125, 2 epochs, seed 0) for ``uniform_on_off`` and ``tim_on_off``; prints
the test predictions and UF1 as one JSON line. Run it under both versions and compare the lines::

    git worktree add /tmp/dfme-041 65fdc0a
    PYTHONPATH=/tmp/dfme-041/packages/dfme/src:/tmp/dfme-041/shared/src \\
        uv run python packages/dfme/docs/scripts/onset_diff_unchanged.py > old.json
    uv run python packages/dfme/docs/scripts/onset_diff_unchanged.py > new.json && cmp old.json new.json
"""

from __future__ import annotations

import json
import tempfile

import torch
from dfme.folds import fit_fold


def main() -> None:
    torch.set_num_threads(1)
    out = {}
    for sampling in ("uniform_on_off", "tim_on_off"):
        data = {"subjects": 12, "size": 16, "num_frames": 8, "batch_size": 8, "clip_input": "onset_diff",
                "sampling": sampling, "fold": 1, "cache_dir": tempfile.mkdtemp()}  # fmt: skip
        result = fit_fold({"width_mult": 0.125, "lr": 1e-3}, data, 2, seed=0)
        out[sampling] = [[int(p) for p in result["y_pred"]], float(result["uf1"])]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
