"""``ccgc reproduce``: the paper's Table 1 rows — k-means baselines, CCGC variants and SCGC over seeds.

The grid is datasets × methods × seeds (:class:`paperlab_core.experiment.Cell`); each cell is one run and its record
holds the three protocols (``best``, ``best_trained``, ``last``) or the three k-means baselines. The tables are built
from the records alone, so ``--shard K/N`` runs and ``--merge DIR...`` give the same tables as one whole run.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from ccgc.names import DATASETS, METHODS, VARIANTS
from paperlab_core.errors import ConfigError, UserError
from paperlab_core.experiment import Cell, run_experiment, shard_cells
from paperlab_core.results import Table
from paperlab_core.verbs import Run

FULL_DATASETS = ("cora", "citeseer", "bat", "eat", "uat")
QUICK_DATASETS = ("rpg", "karate", "digits")
DEFAULT_METHODS = ("kmeans", *VARIANTS)
DEFAULT_EPOCHS = 400
PROTOCOLS = ("best", "best_trained", "last")
METRIC_COLUMNS = {"acc": "ACC", "nmi": "NMI", "ari": "ARI", "f1": "F1"}
BASELINES = {
    "kmeans_x": "k-means(X)",
    "kmeans_xs": "k-means(X̃)",
    "spherical_kmeans_xs": "spherical k-means(rownorm X̃)",
}
LABELS = {
    "paper": "CCGC paper",
    "stable": "CCGC stable (default)",
    "legacy": "CCGC legacy",
    "scgc": "SCGC (official t/lr, no zero_grad)",
}


def variant_config(variant: str, epochs: int = DEFAULT_EPOCHS) -> Any:
    """The :class:`ccgc.engine.CCGCConfig` of a variant (official hyper-parameters otherwise).

    ``stable``: the package default (``zero_grad`` every step, L_pos = mean over positive pairs; preset
    ``stable``); ``paper``: the paper's L_pos = Σ/K with ``zero_grad`` (preset ``paper``); ``legacy``: the
    official code's three quirks and Σ/K (preset ``legacy``). Every preset runs on Cora.
    """
    from ccgc.engine import CCGCConfig

    if variant == "paper":
        return CCGCConfig(epochs=epochs, pos_normalization="clusters")
    if variant == "stable":
        return CCGCConfig(epochs=epochs, pos_normalization="pairs")
    if variant == "legacy":
        return CCGCConfig.legacy(epochs=epochs)
    raise ConfigError(f"unknown CCGC variant {variant!r} (expected one of {', '.join(VARIANTS)})")


class GraphCache:
    """Each dataset loaded and smoothed (t = 4, the official setting) once per process."""

    def __init__(self, root: Any = None, t: int = 4, path: Any = None) -> None:
        self.root = root
        self.t = t
        self.path = path
        self.graphs: dict[str, tuple[Any, Any]] = {}

    def get(self, dataset: str) -> tuple[Any, Any]:
        if dataset not in self.graphs:
            from ccgc.graphs import load_graph
            from ccgc.smoothing import smooth

            graph = load_graph(dataset, self.root, self.path)
            if graph.y is None:
                raise UserError(f"{dataset}: the graph has no labels, so it cannot be scored")
            self.graphs[dataset] = (graph, smooth(graph.edge_index, graph.x, self.t))
        return self.graphs[dataset]


def data_settings(graphs: GraphCache, datasets: Sequence[str]) -> dict[str, Any]:
    """The run-wide data identity every cell depends on: each dataset's content hash (features, edges, labels), so a
    resumed run whose graph file changed under the same name re-runs its cells instead of reusing stale records."""
    from ccgc.data import graph_hash

    return {"graphs": {dataset: graph_hash(graphs.get(dataset)[0]) for dataset in datasets}}


def run_method(
    graphs: GraphCache,
    dataset: str,
    method: str,
    seed: int,
    epochs: int = DEFAULT_EPOCHS,
    device: Any = "cpu",
    plot_to: Any = None,
) -> dict[str, Any]:
    """One cell: the three k-means baselines, one CCGC variant or SCGC on ``dataset`` with ``seed``."""
    from ccgc.baselines import kmeans_baselines, run_scgc
    from ccgc.engine import train_ccgc

    graph, x_smooth = graphs.get(dataset)
    info = {
        "nodes": graph.num_nodes,
        "edges": graph.num_undirected_edges,
        "clusters": graph.num_clusters,
        "t": graphs.t,
    }
    if method == "kmeans":
        return {**info, **kmeans_baselines(graph, x_smooth, seed)}
    if method == "scgc":
        # the official SCGC code never zeroes its gradients; run as published
        out = run_scgc(graph, seed=seed, epochs=epochs, legacy_accumulate_grads=True, device=device)
        return {**info, **{p: out[p] for p in PROTOCOLS}, "scgc_t": out["t"], "scgc_lr": out["lr"]}
    cfg = variant_config(method, epochs)
    run = train_ccgc(
        x_smooth.to(device),
        graph.num_clusters,
        graph.y.to(device),
        cfg,
        seed=seed,
        keep_embedding=plot_to is not None,
    )
    if plot_to is not None and run.embedding is not None:
        from ccgc.plots import save_embedding_pca

        save_embedding_pca(
            run.embedding.cpu(), run.labels.cpu(), plot_to, title=f"CCGC {method} on {dataset} (seed {seed})"
        )
    return {**info, **{p: getattr(run, p) for p in PROTOCOLS}}


# --------------------------------------------------------------------------------------------- tables
def _stats(runs: Sequence[Mapping[str, Any] | None]) -> dict[str, str]:
    """``"mean ± std"`` (population std, ×100 already) per metric over runs; the bare value for one run."""
    from ccgc.evaluate import aggregate

    present = [r for r in runs if r is not None]
    stats = aggregate(present)
    if len(present) == 1:
        return {m: f"{stats[m]['mean']:.2f}" for m in METRIC_COLUMNS if m in stats}
    return {m: f"{stats[m]['mean']:.2f} ± {stats[m]['std']:.2f}" for m in METRIC_COLUMNS if m in stats}


def _order(records: Sequence[Mapping[str, Any]], key: str, order: Sequence[str]) -> list[str]:
    found = {r["params"][key] for r in records}
    return [name for name in order if name in found]


def dataset_table(dataset: str, records: Sequence[Mapping[str, Any]]) -> Table:
    """Baselines, every method × protocol and the paper's Table 1 row of one dataset."""
    from ccgc.paper import TABLE1_CCGC

    mine = [r for r in records if r["params"]["dataset"] == dataset]
    first = mine[0]["result"]
    title = (
        f"{dataset}: N = {first['nodes']}, undirected edges = {first['edges']}, K = {first['clusters']}, "
        f"t = {first.get('t', 4)}"
    )
    table = Table(["method", "protocol", "runs", *METRIC_COLUMNS.values()], title=title)
    for method in _order(mine, "method", METHODS):
        results = [r["result"] for r in mine if r["params"]["method"] == method]
        if method == "kmeans":
            for name, label in BASELINES.items():
                stats = _stats([res[name] for res in results])
                table.add(label, "—", len(results), *(stats.get(m) for m in METRIC_COLUMNS))
            continue
        for protocol in PROTOCOLS:
            stats = _stats([res[protocol] for res in results])
            table.add(LABELS[method], protocol, len(results), *(stats.get(m) for m in METRIC_COLUMNS))
    paper = TABLE1_CCGC.get(dataset)
    if paper:
        cells = [f"{paper[m][0]:.2f} ± {paper[m][1]:.2f}" for m in METRIC_COLUMNS]
        table.add("CCGC, paper's Table 1", "best", 10, *cells)
    return table


def main_table(records: Sequence[Mapping[str, Any]]) -> Table:
    """One row per dataset: ACC of k-means(X̃), each variant's honest ``last`` and label-selected ``best``.

    ``runs`` gives the number of seeds per column group (k-means, then each variant present) when they differ.
    """
    from ccgc.paper import TABLE1_CCGC

    variants = _order(records, "method", VARIANTS)
    groups = " / ".join(("k-means", *variants))
    columns = ["dataset", f"runs ({groups})" if variants else "runs", "k-means(X̃)"]
    for variant in variants:
        name = f"{variant} (default)" if variant == "stable" else variant
        columns += [f"{name} last", f"{name} best"]
    columns.append("Table 1 (best)")
    table = Table(columns, title="ACC (mean ± std over seeds, ×100)")
    for dataset in _order(records, "dataset", DATASETS):
        mine = [r for r in records if r["params"]["dataset"] == dataset]
        counts = [len([r for r in mine if r["params"]["method"] == m]) for m in ("kmeans", *variants)]
        present = [c for c in counts if c]
        runs: Any = present[0] if len(set(present)) == 1 else " / ".join(str(c) for c in counts)
        row: list[Any] = [dataset, runs]
        kmeans = [r["result"]["kmeans_xs"] for r in mine if r["params"]["method"] == "kmeans"]
        row.append(_stats(kmeans).get("acc") if kmeans else None)
        for variant in variants:
            results = [r["result"] for r in mine if r["params"]["method"] == variant]
            for protocol in ("last", "best"):
                row.append(_stats([res[protocol] for res in results]).get("acc") if results else None)
        paper = TABLE1_CCGC.get(dataset)
        row.append(f"{paper['acc'][0]:.2f} ± {paper['acc'][1]:.2f}" if paper else None)
        table.add(*row)
    return table


NOTES = (
    "Mean ± population std over seeds, ×100. `best`: the official protocol (highest ACC over the pre-training "
    "k-means(X̃) and every 10-epoch re-clustering, chosen with the labels); `best_trained`: the same without the "
    "pre-training candidate; `last`: k-means on the embedding after the final epoch (no label peeking). "
    "Variants: `stable` = package default (zero_grad, L_pos = mean over positive pairs), `paper` = the paper's "
    "L_pos = Σ/K with zero_grad, `legacy` = official-code parity (no zero_grad, first cluster skipped, official "
    "k-means init, Σ/K)."
)


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``main`` (ACC per dataset) and one table per dataset, from the records alone."""
    epochs = {r["params"].get("epochs", DEFAULT_EPOCHS) for r in records}
    if len(epochs) > 1:
        raise UserError(
            f"the records mix runs of different --epochs ({sorted(epochs)}); merge like with like"
        )
    tables: dict[str, Any] = {"main": main_table(records)}
    for dataset in _order(records, "dataset", DATASETS):
        tables[dataset] = dataset_table(dataset, records)
    tables["text"] = NOTES
    return tables


# --------------------------------------------------------------------------------------------- verb
def grid(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], epochs: int) -> list[Cell]:
    """Cells dataset × method × seed; a non-default epoch budget is part of the key (records never mix)."""
    suffix = "" if epochs == DEFAULT_EPOCHS else f"/epochs{epochs}"
    return [
        Cell(f"{d}/{m}/seed{s}{suffix}", {"dataset": d, "method": m, "seed": s, "epochs": epochs})
        for d in datasets
        for m in methods
        for s in seeds
    ]


def reproduce(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Datasets × methods × seeds (``--quick``: the generated graphs, one seed); tables from the records."""
    datasets = args.data_dataset or list(QUICK_DATASETS if args.quick else FULL_DATASETS)
    methods = args.methods or list(DEFAULT_METHODS)
    seeds = args.seeds or ([0] if args.quick else list(range(10)))
    cells = grid(datasets, methods, seeds, args.epochs)
    graphs = GraphCache(args.data_root)
    settings = None
    if not args.merge:  # a missing file fails now, before any cell runs
        settings = data_settings(
            graphs, list(dict.fromkeys(c.params["dataset"] for c in shard_cells(cells, args.shard)))
        )
    device = run.device

    def run_cell(cell: Cell) -> dict[str, Any]:
        p = cell.params
        plot = None
        if p["method"] in VARIANTS and p["seed"] == seeds[0]:
            plot = run.path(f"{p['dataset']}_{p['method']}_seed{p['seed']}_pca.png")
        result = run_method(graphs, p["dataset"], p["method"], p["seed"], p["epochs"], device, plot)
        if "last" in result:
            run.log(
                f"{cell.key}: best ACC {result['best']['acc']:.2f} | last ACC {result['last']['acc']:.2f} "
                f"NMI {result['last']['nmi']:.2f}"
            )
        return result

    return run_experiment(run, args, cells, run_cell, summarize, settings=settings)
