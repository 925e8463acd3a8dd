"""Performance measurements of spec §7: Cora per-epoch time vs the official dense pattern, and the scale run.

The official code is not vendored (no licence). ``official_*`` functions re-implement its *computational
pattern* from the spec's description: dense ``eye(N)`` target and Z1Z2ᵀ in the warm-up loss, k-means with 20
random K-point candidates scored by the sum of all N×K distances and distances computed by broadcasting an
N×K×D tensor, and a per-cluster Python loop for the centre update. The contrastive branch of the official code is
the same per-cluster loop as ours, so both sides use :func:`ccgc.losses.ccgc_loss` there.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ccgc.engine import CCGCConfig, train_ccgc
from ccgc.losses import ccgc_loss, dense_warmup_loss, high_confidence_mask
from ccgc.models import SiameseLinearEncoder


def official_broadcast_kmeans(
    x: torch.Tensor, k: int, generator: torch.Generator, max_iter: int = 500
) -> Any:
    """The official k-means pattern: N×K×D broadcast distances, 20 candidates, per-cluster mean loop."""
    n = x.size(0)

    def dists(centres: torch.Tensor) -> torch.Tensor:
        return ((x.unsqueeze(1) - centres.unsqueeze(0)) ** 2).sum(-1)

    best, best_score = None, None
    for _ in range(20):
        centres = x[torch.randperm(n, generator=generator)[:k]]
        score = float(dists(centres).sum())
        if best_score is None or score < best_score:
            best, best_score = centres, score
    centres = best.clone()
    iteration = 0
    while True:
        dis = dists(centres)
        labels = dis.argmin(1)
        previous = centres.clone()
        for cluster in range(k):
            members = x[labels == cluster]
            centres[cluster] = members.mean(0)
        shift = float(torch.sqrt(((centres - previous) ** 2).sum(1)).sum())
        iteration += 1
        if shift**2 < 1e-4 or iteration > max_iter:
            return labels, dis


def official_pattern_run(x: torch.Tensor, k: int, epochs: int, seed: int = 0) -> dict[str, list[float]]:
    """Per-epoch timings of the official computational pattern (dense warm-up, broadcast k-means)."""
    cfg = CCGCConfig(epochs=epochs)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SiameseLinearEncoder(x.size(1), cfg.dims)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    labels, dis = official_broadcast_kmeans(x, k, gen)
    timings: dict[str, list[float]] = {"warmup": [], "contrastive": [], "recluster": []}
    for epoch in range(epochs):
        t0 = time.perf_counter()
        z1, z2 = model(x)
        if epoch <= cfg.warmup_epochs:
            loss, phase = dense_warmup_loss(z1, z2), "warmup"
        else:
            out = ccgc_loss(z1, z2, labels, high_confidence_mask(dis, cfg.tau), cfg.alpha, k, generator=gen)
            loss, phase = out.loss, "contrastive"
        loss.backward()
        optimizer.step()
        timings[phase].append(time.perf_counter() - t0)
        if epoch % cfg.recluster_every == 0:
            t1 = time.perf_counter()
            labels, dis = official_broadcast_kmeans(model.embed(x), k, gen)
            timings["recluster"].append(time.perf_counter() - t1)
    return timings


def _summary(timings: dict[str, list[float]], total: float) -> dict[str, float | None]:
    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    return {
        "median_warmup_epoch_s": med(timings["warmup"]),
        "median_contrastive_epoch_s": med(timings["contrastive"]),
        "mean_recluster_s": statistics.fmean(timings["recluster"]) if timings["recluster"] else None,
        "total_s": total,
    }


def epoch_time_main(argv: list[str]) -> int:
    """Cora per-epoch time: this package vs the official dense pattern, same CPU, same threads."""
    from ccgc.data import load_graph
    from ccgc.smoothing import smooth
    from paperlab_core.logging import make_run_dir, write_json_atomic
    from paperlab_core.runtime import environment_report, set_threads

    parser = argparse.ArgumentParser(prog="ccgc benchmark epoch-time", description=epoch_time_main.__doc__)
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--root", default=None)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    graph = load_graph(args.dataset, args.root)
    start = time.perf_counter()
    x = smooth(graph.edge_index, graph.x, 4)
    preprocess = time.perf_counter() - start
    # one short run of each side first (allocator and BLAS warm-up), discarded
    train_ccgc(x, graph.num_clusters, None, CCGCConfig(epochs=2), seed=1)
    official_pattern_run(x, graph.num_clusters, 2, seed=1)
    start = time.perf_counter()
    ours = train_ccgc(x, graph.num_clusters, None, CCGCConfig(epochs=args.epochs), seed=0)
    ours_total = time.perf_counter() - start
    start = time.perf_counter()
    official = official_pattern_run(x, graph.num_clusters, args.epochs, seed=0)
    official_total = time.perf_counter() - start
    report = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "environment": environment_report(),
        "preprocess_smoothing_s": preprocess,
        "reference": "re-implemented official computational pattern (ccgc.benchmarks.official_pattern_run)",
        "ours": _summary({k: ours.timings[k] for k in ("warmup", "contrastive", "recluster")}, ours_total),
        "official_pattern": _summary(official, official_total),
    }
    out = Path(args.out) if args.out else make_run_dir("ccgc", "benchmark-epoch-time")
    write_json_atomic(out / "benchmark.json", report)
    print(f"{'measure':28s} {'ours':>10s} {'official':>10s}")
    for key in ("median_warmup_epoch_s", "median_contrastive_epoch_s", "mean_recluster_s", "total_s"):
        a, b = report["ours"][key], report["official_pattern"][key]
        print(f"{key:28s} {a:10.4f} {b:10.4f}" if a is not None and b is not None else f"{key:28s} n/a")
    print(f"wrote {out / 'benchmark.json'}")
    return 0


def peak_rss_gb() -> float:
    """Peak resident set size of this process and its children (Linux ru_maxrss is in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024**2


def scale_main(argv: list[str]) -> int:
    """100k-node sparse SBM run on CPU: wall time and peak RSS (no N×N anywhere)."""
    from ccgc.graphs import sparse_sbm
    from ccgc.smoothing import smooth
    from paperlab_core.logging import make_run_dir, write_json_atomic
    from paperlab_core.runtime import environment_report, set_threads

    parser = argparse.ArgumentParser(prog="ccgc benchmark scale", description=scale_main.__doc__)
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=61)
    parser.add_argument("--kmeans-n-init", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    t0 = time.perf_counter()
    graph = sparse_sbm(args.nodes, args.edges, args.clusters, 0.8, args.features, 1.0, seed=0)
    t_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    x = smooth(graph.edge_index, graph.x, 4)
    t_smooth = time.perf_counter() - t0
    cfg = CCGCConfig(epochs=args.epochs, kmeans_n_init=args.kmeans_n_init)
    t0 = time.perf_counter()
    run = train_ccgc(x, graph.num_clusters, graph.y, cfg, seed=0)
    t_train = time.perf_counter() - t0
    n, k, d = args.nodes, args.clusters, cfg.dims
    report = {
        "nodes": n,
        "undirected_edges": graph.num_undirected_edges,
        "edge_index_entries": graph.edge_index.size(1),
        "clusters": k,
        "features": args.features,
        "epochs": args.epochs,
        "kmeans_n_init": args.kmeans_n_init,
        "threads": torch.get_num_threads(),
        "environment": environment_report(),
        "generate_s": t_graph,
        "smooth_s": t_smooth,
        "train_s": t_train,
        "median_warmup_epoch_s": statistics.median(run.timings["warmup"]) if run.timings["warmup"] else None,
        "median_contrastive_epoch_s": statistics.median(run.timings["contrastive"])
        if run.timings["contrastive"]
        else None,
        "mean_recluster_s": statistics.fmean(run.timings["recluster"]) if run.timings["recluster"] else None,
        "peak_rss_gb": peak_rss_gb(),
        "best": run.best,
        "best_trained": run.best_trained,
        "last": run.last,
        "official_design_analytic_gb": {
            "one_NxN_float32_matrix": n * n * 4 / 1e9,
            "dense_adjacency_int32": n * n * 4 / 1e9,
            "kmeans_NxKxD_float32_broadcast": n * k * d * 4 / 1e9,
        },
    }
    out = Path(args.out) if args.out else make_run_dir("ccgc", "benchmark-scale")
    write_json_atomic(out / "benchmark.json", report)
    for key in ("nodes", "undirected_edges", "epochs", "generate_s", "smooth_s", "train_s", "peak_rss_gb"):
        value = report[key]
        print(f"{key:22s} {value:.2f}" if isinstance(value, float) else f"{key:22s} {value}")
    print(f"best ACC {run.best['acc']:.2f} | last ACC {run.last['acc']:.2f} NMI {run.last['nmi']:.2f}")
    print(f"wrote {out / 'benchmark.json'}")
    return 0
