"""Per-update trace of a ``mnist-reduced`` DOORPING distillation (lab notebook, session 5).

Runs the ``mnist-reduced/doorping/seedS`` cell's distillation (no evaluation) with ``doorping.dc.update_trigger``
wrapped, and prints for every trigger update: the selected neuron, the optimiser steps taken, the selected
activation at the start (``a0 = sqrt(first_loss / 81)``, α = 10), the first and last loss and the trigger's range.

Run: ``uv run python packages/doorping/docs/update_trace.py SEED`` (≈ 1 min of CPU).
"""

import sys
import time

import doorping.dc as dcmod
import torch
from doorping.data import DistillData
from doorping.module import DistillModule
from doorping.reproduce import ROWS
from doorping.runner import merge, preset
from pytorch_lightning import Trainer

if __name__ == "__main__":
    torch.set_num_threads(1)
    seed = int(sys.argv[1])
    config = preset("mnist-reduced")
    model = merge(config["model"], ROWS["doorping"])
    model["seed"] = seed
    trace = []
    original = dcmod.update_trigger

    def traced(read, leaf, mask, neurons, *args, **kwargs):
        result = original(read, leaf, mask, neurons, *args, **kwargs)
        values = leaf.detach()[mask.bool()]
        trace.append((int(neurons[0]), result, float(values.min()), float(values.max())))
        return result

    dcmod.update_trigger = traced
    module, data = DistillModule(**model), DistillData(**config["data"])
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, inference_mode=False,
                      default_root_dir=f"/tmp/doorping_trace{seed}", num_sanity_val_steps=0)  # fmt: skip
    start = time.process_time()
    trainer.fit(module, datamodule=data)
    print(f"distillation CPU s {time.process_time() - start:.0f}")
    for i, (neuron, r, low, high) in enumerate(trace):
        a0 = (r.first_loss / 81) ** 0.5
        print(f"update {i:2d} neuron {neuron:3d} steps {r.steps:3d} a0 {a0:.4f} loss {r.first_loss:.3g} → "
              f"{r.last_loss:.3g} range [{low:.1f}, {high:.1f}]")  # fmt: skip
