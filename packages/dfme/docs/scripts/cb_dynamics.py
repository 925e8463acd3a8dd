"""Diagnosis of the ``cb`` vs ``ce`` gate cells (lab notebook §9): one gate cell of ``dfme reproduce`` trained
exactly as ``dfme.folds.fit_fold`` does, with the held-out fold and a fixed training subset scored after every
epoch (plain tensors, no DataLoader, RNG state saved and restored, so the training trajectory is the record's).

    PAPERLAB_THREADS=1 python docs/scripts/cb_dynamics.py --imbalance cb --fold 2 --seed 0 --epochs 12 \
        --out /tmp/cb_f2_s0.json [--lr 0.003] [--cb-reduction weighted_mean]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from dfme.data import DFMEDataModule
from dfme.folds import linked, load_preset
from dfme.metrics import emotion_scores
from dfme.module import MERModule
from pytorch_lightning import Callback, Trainer, seed_everything


@torch.no_grad()
def predict(module: MERModule, inputs: np.ndarray, index: np.ndarray) -> np.ndarray:
    was_training = module.training
    module.eval()
    out = [module(torch.as_tensor(inputs[index[i : i + 64]])).argmax(1) for i in range(0, len(index), 64)]
    module.train(was_training)
    return torch.cat(out).numpy()


class EpochProbe(Callback):
    def __init__(self, train_probe: np.ndarray) -> None:
        self.train_probe = train_probe
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer: Trainer, module: MERModule) -> None:
        state = torch.get_rng_state()
        dm = trainer.datamodule
        row: dict = {
            "epoch": trainer.current_epoch,
            "train_loss": float(trainer.callback_metrics["train/loss_epoch"]),
        }
        for name, index in (("test", dm.test_index), ("train", self.train_probe)):
            pred = predict(module, dm.inputs, index)
            scores = emotion_scores(dm.labels[index], pred, 7)
            row[name] = {k: round(float(scores[k]), 3) for k in ("uf1", "uar", "acc")}
            row[name]["pred_hist"] = np.bincount(pred, minlength=7).tolist()
        torch.set_rng_state(state)
        self.rows.append(row)
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--imbalance", default="cb")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--out", required=True)
    args, extra = parser.parse_known_args()
    torch.set_num_threads(1)
    preset = load_preset(None)
    model = {**preset["model"], "imbalance": args.imbalance}
    for item in extra:  # --model.KEY=VALUE overrides (yaml-parsed)
        key, value = item.removeprefix("--model.").split("=", 1)
        import yaml

        model[key] = yaml.safe_load(value)
    if args.lr is not None:
        model["lr"] = args.lr
    data = {**preset["data"], "sampling": "tim_on_off", "fold": args.fold, "task": "emotion",
            "train_subject_fraction": 1.0, "clip_input": "onset_diff"}  # fmt: skip
    model, data = linked(model, data)
    seed_everything(args.seed, workers=True)
    dm = DFMEDataModule(**data)
    module = MERModule(**model)
    dm.setup("fit")
    probe = dm.train_index[np.random.default_rng(0).permutation(len(dm.train_index))[:96]]
    callback = EpochProbe(np.sort(probe))
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=args.epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0, callbacks=[callback])  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    out = {"args": vars(args), "model": model, "counts": dm.class_counts().tolist(),
           "loss_weights": None if module.loss_fn.weights is None else module.loss_fn.weights.tolist(),
           "epochs": callback.rows, "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=1)


if __name__ == "__main__":
    main()
