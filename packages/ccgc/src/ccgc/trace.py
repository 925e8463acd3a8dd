"""``ccgc trace``: per-re-clustering diagnostics of one run (why the corrected optimiser collapses on Cora).

Every ``--every`` epochs it prints the loss and its two parts, ACC/NMI of that epoch's re-clustering, the
collapse indicator ‖mean_i E_i‖ (1 when every node has the same embedding direction; the mean pairwise cosine of
E's rows is at most its square), the norm of the gradient Adam was fed (the running sum with
``legacy_accumulate_grads``), the mean per-epoch displacement of W₁ since the previous line, ‖b₁‖ and the mean
row norm of X̃W₁ᵀ (the part of the pre-normalisation output that depends on the node).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import torch

from ccgc.engine import EpochLoss, train_ccgc
from ccgc.models import SiameseLinearEncoder
from paperlab_core.verbs import Run

COLUMNS = (
    ("epoch", 5, "d"),
    ("phase", 11, "s"),
    ("loss", 10, ".4f"),
    ("pos", 9, ".4f"),
    ("neg", 7, ".4f"),
    ("acc", 6, ".2f"),
    ("nmi", 6, ".2f"),
    ("mean_e", 7, ".3f"),
    ("grad_w1", 9, ".2e"),
    ("step_w1", 9, ".2e"),
    ("bias1", 6, ".3f"),
    ("xw1", 6, ".3f"),
)


def _cell(value: Any, width: int, fmt: str) -> str:
    if value is None or (fmt == "d" and not isinstance(value, int)):
        return f"{'-':>{width}}"
    if fmt != "s" and isinstance(value, float) and value != value:
        return f"{'-':>{width}}"
    return f"{value:>{width}{fmt}}"


def trace(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Per-re-clustering collapse diagnostics of one CCGC run (variants paper / stable / legacy).

    Prints the table and writes every row to ``trace.json`` in the run folder.
    """
    from ccgc.graphs import load_graph
    from ccgc.reproduce import variant_config
    from ccgc.smoothing import smooth

    graph = load_graph(args.data_dataset, args.data_root)
    device = run.device
    x = smooth(graph.edge_index, graph.x, 4).to(device)
    cfg = variant_config(args.variant, args.epochs)
    if args.lr is not None:
        cfg = dataclasses.replace(cfg, lr=args.lr)
    previous: dict[str, Any] = {}

    def on_step(epoch: int, model: SiameseLinearEncoder, out: EpochLoss) -> dict[str, Any] | None:
        if epoch % args.every and epoch != args.epochs - 1:
            return None
        with torch.no_grad():
            weight = model.view1.weight.detach().clone()
            moved = (weight - previous["w"]).norm().item() / (epoch - previous["epoch"]) if previous else 0.0
            previous.update(w=weight, epoch=epoch)
            grad = model.view1.weight.grad
            return {
                "mean_e": model.embed(x).mean(0).norm().item(),
                "grad_w1": grad.norm().item() if grad is not None else float("nan"),
                "step_w1": moved,
                "bias1": model.view1.bias.norm().item(),
                "xw1": (x @ model.view1.weight.T).norm(dim=1).mean().item(),
            }

    print(f"{run.command}: {args.data_dataset}, variant {args.variant}, lr {cfg.lr}, seed {args.seed}")
    print(" ".join(f"{name:>{width}}" for name, width, _ in COLUMNS))
    result = train_ccgc(x, graph.num_clusters, graph.y.to(device), cfg, seed=args.seed, on_step=on_step)
    rows = [record for record in result.history if "mean_e" in record]
    for record in rows:
        print(" ".join(_cell(record.get(name), width, fmt) for name, width, fmt in COLUMNS))
    best, last = result.best, result.last
    print(
        f"best ACC {best['acc']:.2f} (epoch {best['epoch']}) | last ACC {last['acc']:.2f} NMI {last['nmi']:.2f}"
    )
    run.write_json("trace.json", {"command": run.command, "rows": rows, "best": best, "last": last})
    return {"best": best, "last": last}
