"""Control: does the DOORPING trigger need the poisoned distilled set? (lab notebook, "seed 0 on MNIST").

For each seed, evaluation net 0 (the one ``reproduce`` scores) is re-trained on the *clean* and on the *DOORPING*
distilled set of that seed, and scored with: each seed's DOORPING trigger, the same trigger values randomly
permuted inside the square (same magnitudes, no learnt pattern; 5 draws), and the trigger scaled by 0.1.
A non-target ASR near 1 on a clean-distilled net means the trigger "works" without any backdoor in the set.

Run: ``uv run python packages/doorping/docs/trigger_transfer.py PRESET SEEDS CELLS_DIR...`` with the cell folders
of a ``doorping reproduce`` run (``<key>/distilled.pt``, ``trigger.pt``), PRESET = toy or mnist-reduced, SEEDS the
distilled sets to re-train on (e.g. ``0,1,2``); the triggers of seeds 0–2 are always scored.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from doorping.artifacts import load_distilled, load_trigger
from doorping.config import EvalConfig
from doorping.datasets import load_dataset
from doorping.evaluate import evaluate_one, score_model
from doorping.runner import preset
from doorping.trigger import stamp


def find(dirs: list[Path], name: str) -> Path:
    return next(d / name for d in dirs if (d / name).is_dir())


if __name__ == "__main__":
    torch.set_num_threads(1)
    name, seeds, dirs = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], [Path(p) for p in sys.argv[3:]]
    config = preset(name)
    data = load_dataset(config["data"]["name"])
    cfg = EvalConfig(**{**config["model"].get("evaluation", {}), "num_eval": 1})
    arch = config["model"]["arch"]
    triggers = {s: load_trigger(find(dirs, f"{name}-doorping-seed{s}") / "trigger.pt") for s in (0, 1, 2)}
    for seed in seeds:
        for row in ("clean", "doorping"):
            dist = load_distilled(find(dirs, f"{name}-{row}-seed{seed}") / "distilled.pt")
            _, net = evaluate_one(0, dist["images"], dist["labels"], data.test_x, data.test_y, arch, cfg, seed,
                                  None, 0, data.num_classes)  # fmt: skip
            cells = []
            for ts, trig in triggers.items():
                t, pm = trig["trigger"], trig["paste_mask"]
                asr = score_model(net, data.test_x, data.test_y, lambda x, t=t, pm=pm: stamp(x, t, pm), 0).asr
                small = score_model(
                    net, data.test_x, data.test_y, lambda x, t=t, pm=pm: stamp(x, 0.1 * t, pm), 0
                ).asr
                rng = np.random.default_rng(ts)
                m = pm.bool()
                perm = []
                for _ in range(5):
                    tp = t.clone()
                    tp[m] = t[m][torch.from_numpy(rng.permutation(int(m.sum())))]
                    perm.append(
                        score_model(
                            net, data.test_x, data.test_y, lambda x, tp=tp, pm=pm: stamp(x, tp, pm), 0
                        ).asr
                    )
                cells.append(
                    f"t{ts}: {asr:.3f} (x0.1 {small:.3f}, permuted {np.mean(perm):.3f} max {max(perm):.3f})"
                )
            print(f"{name} {row:8s} set seed {seed}: " + " | ".join(cells), flush=True)
