"""Small package verbs: ``baselines``, ``datasets``, ``benchmark``."""

from __future__ import annotations

import argparse


def baselines_main(argv: list[str]) -> int:
    """k-means(X), k-means(X̃), spherical k-means(X̃) and SCGC on one dataset, over seeds."""
    from ccgc.baselines import kmeans_baselines, run_scgc
    from ccgc.data import DATASETS, load_graph
    from ccgc.evaluate import aggregate
    from ccgc.smoothing import smooth

    parser = argparse.ArgumentParser(prog="ccgc baselines", description=baselines_main.__doc__)
    parser.add_argument("--data.dataset", dest="dataset", default="rpg", choices=DATASETS)
    parser.add_argument("--data.root", dest="root", default=None)
    parser.add_argument("--data.path", dest="path", default=None)
    parser.add_argument("--t", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--scgc", action="store_true", help="also run the SCGC baseline (400 epochs per seed)"
    )
    args = parser.parse_args(argv)
    graph = load_graph(args.dataset, args.root, args.path)
    x_smooth = smooth(graph.edge_index, graph.x, args.t)
    runs: dict[str, list] = {}
    for seed in range(args.seeds):
        for name, metrics in kmeans_baselines(graph, x_smooth, seed).items():
            runs.setdefault(name, []).append(metrics)
        if args.scgc:
            scgc = run_scgc(graph, seed=seed)
            for protocol in ("best", "last"):
                runs.setdefault(f"scgc_{protocol}", []).append(scgc[protocol])
    print(f"{args.dataset}: N={graph.num_nodes} K={graph.num_clusters} seeds={args.seeds}")
    for name, values in runs.items():
        stats = aggregate(values)
        cells = " ".join(f"{m.upper()} {s['mean']:.2f}±{s['std']:.2f}" for m, s in stats.items())
        print(f"  {name:22s} {cells}")
    return 0


def datasets_main(argv: list[str]) -> int:
    """List the paper's datasets and the generated ones, and whether their files were found."""
    from pathlib import Path

    from ccgc.data import default_root
    from ccgc.graphs import ADGC, PLANETOID

    parser = argparse.ArgumentParser(prog="ccgc datasets", description=datasets_main.__doc__)
    parser.add_argument("--root", default=None, help="folder to look in instead of the default")
    args = parser.parse_args(argv)
    for key, pretty in PLANETOID.items():
        root = Path(args.root) if args.root else default_root(key)
        if root is None:
            print(f"{key:9s} Planetoid  not found locally (downloaded by torch_geometric when online)")
            continue
        raw = root / pretty / "raw"
        found = (raw / f"ind.{key}.graph").is_file()
        print(
            f"{key:9s} Planetoid  {'found at ' + str(raw) if found else 'missing (looked in ' + str(raw) + ')'}"
        )
    for key in ADGC:
        root = Path(args.root) if args.root else default_root(key)
        folder = root / key
        found = (folder / f"{key}_adj.npy").is_file()
        print(
            f"{key:9s} ADGC .npy  {'found at ' + str(folder) if found else 'missing (looked in ' + str(folder) + ')'}"
        )
    print(
        "rpg       generated  RandomPartitionGraphDataset 4×200 nodes, homophily 0.85, 32-d features (default)"
    )
    print("sbm       generated  own sparse SBM sampler (O(E) memory)")
    print("digits    generated  sklearn digits 1797×64 with a symmetric kNN-10 graph")
    print("karate    generated  Zachary's karate club, X = I, 2 factions")
    return 0


def benchmark_main(argv: list[str]) -> int:
    """Performance: `benchmark epoch-time` (Cora, ours vs the official dense pattern) and `benchmark scale`."""
    from ccgc.benchmarks import epoch_time_main, scale_main

    if not argv or argv[0] not in {"epoch-time", "scale"}:
        print("usage: ccgc benchmark {epoch-time,scale} [options]")
        return 2
    return epoch_time_main(argv[1:]) if argv[0] == "epoch-time" else scale_main(argv[1:])
