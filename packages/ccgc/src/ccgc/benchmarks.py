"""``ccgc benchmark epoch-time|scale`` (spec §7): per-epoch time vs the official dense pattern, and the scale run.

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
from typing import Any

import torch

from ccgc.engine import CCGCConfig, train_ccgc
from ccgc.losses import ccgc_loss, dense_warmup_loss, high_confidence_mask
from ccgc.models import SiameseLinearEncoder
from paperlab_core.verbs import Run


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
    gen = torch.Generator(device="cpu").manual_seed(seed)
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


def epoch_time(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Per-epoch time on one dataset: this package vs the official dense pattern, same CPU, same threads.

    Writes ``benchmark.json`` (all numbers) and ``results.json`` (the table, for the README).
    """
    from ccgc.graphs import load_graph
    from ccgc.smoothing import smooth
    from paperlab_core.results import Table, results_record
    from paperlab_core.runtime import environment_line

    graph = load_graph(args.data_dataset, args.data_root)
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
        "dataset": args.data_dataset,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "preprocess_smoothing_s": preprocess,
        "reference": "re-implemented official computational pattern (ccgc.benchmarks.official_pattern_run)",
        "ours": _summary({k: ours.timings[k] for k in ("warmup", "contrastive", "recluster")}, ours_total),
        "official_pattern": _summary(official, official_total),
    }
    run.write_json("benchmark.json", {**report, "env": run.env})
    table = Table(
        ["measure (s)", "ours", "official pattern", "ratio"],
        formats={"ours": ".4f", "official pattern": ".4f", "ratio": ".2f"},
        title=f"{args.data_dataset}, {args.epochs} epochs, {report['threads']} thread(s)",
    )
    for key in ("median_warmup_epoch_s", "median_contrastive_epoch_s", "mean_recluster_s", "total_s"):
        a, b = report["ours"][key], report["official_pattern"][key]
        table.add(key, a, b, b / a if a and b is not None else None)
    run.write_json(
        "results.json", results_record(run.command, environment_line(run.env), None, {"main": table})
    )
    print(table.to_markdown())
    return {"ours_total_s": ours_total, "official_total_s": official_total}


def peak_rss_gb() -> float:
    """Peak resident set size of this process and its children (Linux ru_maxrss is in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024**2


def scale(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Sparse-SBM scale run (default 100k nodes, ~1M edges): wall time and peak RSS (no N×N anywhere)."""
    from ccgc.graphs import sparse_sbm
    from ccgc.smoothing import smooth

    t0 = time.perf_counter()
    graph = sparse_sbm(args.nodes, args.edges, args.clusters, 0.8, args.features, 1.0, seed=0)
    t_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    device = run.device
    x = smooth(graph.edge_index.to(device), graph.x.to(device), 4)
    t_smooth = time.perf_counter() - t0
    cfg = CCGCConfig(epochs=args.epochs, kmeans_n_init=args.kmeans_n_init)
    t0 = time.perf_counter()
    result = train_ccgc(x, graph.num_clusters, graph.y.to(device), cfg, seed=0)
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
        "generate_s": t_graph,
        "smooth_s": t_smooth,
        "train_s": t_train,
        "median_warmup_epoch_s": statistics.median(result.timings["warmup"])
        if result.timings["warmup"]
        else None,
        "median_contrastive_epoch_s": statistics.median(result.timings["contrastive"])
        if result.timings["contrastive"]
        else None,
        "mean_recluster_s": statistics.fmean(result.timings["recluster"])
        if result.timings["recluster"]
        else None,
        "peak_rss_gb": peak_rss_gb(),
        "best": result.best,
        "best_trained": result.best_trained,
        "last": result.last,
        "official_design_analytic_gb": {
            "one_NxN_float32_matrix": n * n * 4 / 1e9,
            "dense_adjacency_int32": n * n * 4 / 1e9,
            "kmeans_NxKxD_float32_broadcast": n * k * d * 4 / 1e9,
        },
    }
    run.write_json("benchmark.json", {**report, "env": run.env})
    for key in ("nodes", "undirected_edges", "epochs", "generate_s", "smooth_s", "train_s", "peak_rss_gb"):
        value = report[key]
        print(f"{key:22s} {value:.2f}" if isinstance(value, float) else f"{key:22s} {value}")
    print(
        f"best ACC {result.best['acc']:.2f} | last ACC {result.last['acc']:.2f} NMI {result.last['nmi']:.2f}"
    )
    return {k: report[k] for k in ("train_s", "peak_rss_gb")}
