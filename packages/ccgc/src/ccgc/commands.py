"""Small package verbs: ``baselines`` and ``datasets`` (run through :mod:`paperlab_core.verbs`)."""

from __future__ import annotations

import argparse
from typing import Any

from paperlab_core.verbs import Run


def baselines(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """k-means(X), k-means(X̃), spherical k-means(rownorm X̃) and, with ``--scgc``, SCGC on one dataset.

    The cells are those of ``ccgc reproduce`` (same code, same SCGC setting: the official one, no ``zero_grad``);
    the table is written as ``results.json``/``results.md`` in the run folder.
    """
    from ccgc.reproduce import GraphCache, data_settings, dataset_table, grid, run_method
    from paperlab_core.experiment import run_experiment

    seeds = args.seeds or [0, 1, 2]
    methods = ["kmeans", "scgc"] if args.scgc else ["kmeans"]
    dataset = args.data_dataset
    graphs = GraphCache(args.data_root, t=args.data_t, path=args.data_path)
    graph, _ = graphs.get(dataset)
    run.log(f"{dataset}: N={graph.num_nodes} K={graph.num_clusters} t={args.data_t} seeds={seeds}")
    device = run.device

    def run_cell(cell: Any) -> dict[str, Any]:
        p = cell.params
        return run_method(graphs, p["dataset"], p["method"], p["seed"], p["epochs"], device)

    return run_experiment(
        run,
        args,
        grid([dataset], methods, seeds, 400),
        run_cell,
        lambda records: {"main": dataset_table(dataset, records)},
        settings=None if getattr(args, "merge", None) else data_settings(graphs, [dataset]),
    )


def datasets(args: argparse.Namespace, run: Run) -> None:
    """List the paper's datasets and the generated ones, and whether their files were found (no torch)."""
    from ccgc.names import ADGC, PLANETOID, dataset_root

    for key, pretty in PLANETOID.items():
        root = dataset_root(key, args.data_root)
        if root is None:
            print(f"{key:9s} Planetoid  not found locally (downloaded by torch_geometric when online)")
            continue
        raw = root / pretty / "raw"
        found = (raw / f"ind.{key}.graph").is_file()
        print(
            f"{key:9s} Planetoid  {'found at ' + str(raw) if found else 'missing (looked in ' + str(raw) + ')'}"
        )
    for key in ADGC:
        root = dataset_root(key, args.data_root)
        folder = root / key if root is not None else None
        found = folder is not None and (folder / f"{key}_adj.npy").is_file()
        print(
            f"{key:9s} ADGC .npy  {'found at ' + str(folder) if found else 'missing (looked in ' + str(folder) + ')'}"
        )
    print(
        "rpg       generated  RandomPartitionGraphDataset 4×200 nodes, homophily 0.85, 32-d features (default)"
    )
    print("sbm       generated  own sparse SBM sampler (O(E) memory)")
    print("digits    generated  sklearn digits 1797×64 with a symmetric kNN-10 graph")
    print("karate    generated  Zachary's karate club, X = I, 2 factions")
    print("pyg       file       a torch.save'd torch_geometric Data: --data.dataset pyg --data.path FILE")
