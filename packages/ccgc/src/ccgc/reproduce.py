"""``ccgc reproduce``: baselines + CCGC over seeds on the paper's datasets; writes results.md / results.json."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from ccgc.baselines import kmeans_baselines, run_scgc
from ccgc.engine import CCGCConfig, train_ccgc
from ccgc.evaluate import METRICS, aggregate
from ccgc.paper import TABLE1_CCGC

PAPER_DATASETS = ("cora", "citeseer", "bat", "eat", "uat", "amap")
PROTOCOLS = ("best", "best_trained", "last")


def _fmt(stats: dict[str, dict[str, float]]) -> list[str]:
    return [f"{stats[m]['mean']:.2f} ± {stats[m]['std']:.2f}" if m in stats else "—" for m in METRICS]


def render_markdown(results: dict[str, Any]) -> str:
    """Markdown tables: baselines, CCGC best / best_trained / last, the paper's Table 1 row and Δ."""
    lines = [
        "# CCGC reproduction",
        "",
        f"Command: `{results['command']}`  ",
        f"Device: {results['device']}; threads {results['threads']}; seeds {results['seeds']}; "
        f"epochs {results['epochs']}; mean ± population std (×100).",
        "",
    ]
    for dataset, block in results["datasets"].items():
        lines += [f"## {dataset}", ""]
        if "skipped" in block:
            lines += [f"skipped: {block['skipped']}", ""]
            continue
        if not block["ccgc"] and not any(block["baselines"].values()):
            continue
        lines += [
            f"N = {block['nodes']}, undirected edges = {block['edges']}, K = {block['clusters']}, t = 4",
            "",
            "| method | protocol | runs | ACC | NMI | ARI | F1 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, label in (
            ("kmeans_x", "k-means(X)"),
            ("kmeans_xs", "k-means(X̃)"),
            ("spherical_kmeans_xs", "spherical k-means(rownorm X̃)"),
        ):
            stats = aggregate(block["baselines"][name])
            lines.append(
                f"| {label} | — | {len(block['baselines'][name])} | " + " | ".join(_fmt(stats)) + " |"
            )
        if block.get("scgc"):
            for protocol in PROTOCOLS:
                runs = [r[protocol] for r in block["scgc"]]
                lines.append(
                    f"| SCGC (official t/lr, no zero_grad) | {protocol} | {len(runs)} | "
                    + " | ".join(_fmt(aggregate(runs)))
                    + " |"
                )
        for variant, runs in block["ccgc"].items():
            if not runs:
                continue
            for protocol in PROTOCOLS:
                stats = aggregate([r[protocol] for r in runs])
                lines.append(
                    f"| CCGC {variant} | {protocol} | {len(runs)} | " + " | ".join(_fmt(stats)) + " |"
                )
        paper = TABLE1_CCGC.get(dataset)
        if paper:
            lines.append(
                "| CCGC paper Table 1 | best (10 runs) | 10 | "
                + " | ".join(f"{paper[m][0]:.2f} ± {paper[m][1]:.2f}" for m in METRICS)
                + " |"
            )
            for variant, runs in block["ccgc"].items():
                if not runs:
                    continue
                stats = aggregate([r["best"] for r in runs])
                cells = []
                for m in METRICS:
                    delta = stats[m]["mean"] - paper[m][0]
                    cells.append(f"{delta:+.2f}" + (" ⚠" if abs(delta) > 3 else ""))
                lines.append(f"| Δ CCGC {variant} best − paper | | | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("⚠ marks |Δ| > 3 points.")
    return "\n".join(lines) + "\n"


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate the per-seed records of several ``results.json`` files (e.g. seeds run in two processes)."""
    merged: dict[str, Any] = {
        "device": parts[0]["device"],
        "threads": parts[0]["threads"],
        "epochs": parts[0]["epochs"],
        "datasets": {},
        "merged_from": [p.get("command") for p in parts],
    }
    for part in parts:
        for dataset, block in part["datasets"].items():
            if "skipped" in block:
                merged["datasets"].setdefault(dataset, block)
                continue
            target = merged["datasets"].setdefault(
                dataset,
                {k: block[k] for k in ("nodes", "edges", "clusters")}
                | {"baselines": {}, "ccgc": {}, "scgc": []},
            )
            for name, runs in block["baselines"].items():
                target["baselines"].setdefault(name, []).extend(runs)
            for variant, runs in block["ccgc"].items():
                target["ccgc"].setdefault(variant, []).extend(runs)
            target["scgc"].extend(block.get("scgc", []))
    seeds = {len(r) for b in merged["datasets"].values() for r in b.get("ccgc", {}).values()}
    merged["seeds"] = ",".join(str(s) for s in sorted(seeds))
    return merged


def variant_config(variant: str, epochs: int) -> CCGCConfig:
    if variant == "legacy":
        return CCGCConfig.legacy(epochs=epochs)
    if variant == "fixed":
        return CCGCConfig(epochs=epochs, pos_normalization="pairs")
    if variant == "fixed_sum":
        return CCGCConfig(epochs=epochs, pos_normalization="clusters")
    raise SystemExit(f"ccgc reproduce: unknown variant {variant!r} (legacy, fixed, fixed_sum)")


def reproduce_main(argv: list[str]) -> int:
    """Reproduce Table 1: baselines + CCGC (legacy / fixed) over seeds; writes results.md/json."""
    from ccgc.data import load_graph
    from ccgc.smoothing import smooth
    from paperlab_core.logging import log, make_run_dir, write_json_atomic, write_text_atomic
    from paperlab_core.runtime import set_threads

    parser = argparse.ArgumentParser(prog="ccgc reproduce", description=reproduce_main.__doc__)
    parser.add_argument("--datasets", default="cora,citeseer,bat,eat,uat", help="comma list (also rpg, amap)")
    parser.add_argument("--seeds", type=int, default=10, help="number of seeds (official: 10)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the k-means baselines")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (seeds start..start+S-1)")
    parser.add_argument(
        "--merge", nargs="+", default=None, help="render one table from several results.json files and exit"
    )
    parser.add_argument(
        "--variants",
        default="legacy,fixed",
        help="legacy (official code), fixed (zero_grad + per-pair mean, config stable), fixed_sum (zero_grad + the "
        "paper's L_pos = Σ/K: the package default)",
    )
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument(
        "--scgc-seeds",
        type=int,
        default=0,
        help="SCGC baseline runs per dataset, seeds from --seed-start (0: skip)",
    )
    parser.add_argument("--quick", action="store_true", help="Cora 3 seeds legacy, BAT/EAT/UAT 10 seeds, rpg")
    parser.add_argument("--planetoid-root", default=None, help="folder holding Cora/raw, CiteSeer/raw")
    parser.add_argument("--adgc-root", default=None, help="folder holding bat/, eat/, uat/, amap/")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="output folder (default runs/ccgc/<ts>-reproduce)")
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    if args.merge:
        merged = merge_results([json.loads(Path(p).read_text()) for p in args.merge])
        merged["command"] = "ccgc reproduce " + " ".join(argv)
        if args.out:
            write_json_atomic(Path(args.out) / "results.json", merged)
            write_text_atomic(Path(args.out) / "results.md", render_markdown(merged))
        print(render_markdown(merged))
        return 0

    plan: list[tuple[str, int, list[str]]]
    variants = [v for v in args.variants.split(",") if v]
    if args.quick:
        plan = [("cora", 3, ["legacy"]), ("bat", 10, variants), ("eat", 10, variants), ("uat", 10, variants)]
        plan.append(("rpg", 3, variants))
    else:
        plan = [(d.strip().lower(), args.seeds, variants) for d in args.datasets.split(",") if d.strip()]
    out_dir = Path(args.out) if args.out else make_run_dir("ccgc", "reproduce")
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "ccgc reproduce " + " ".join(argv),
        "device": args.device,
        "threads": threads,
        "seeds": args.seeds if not args.quick else "quick",
        "epochs": args.epochs,
        "datasets": {},
    }

    def save() -> None:
        write_json_atomic(out_dir / "results.json", results)
        write_text_atomic(out_dir / "results.md", render_markdown(results))

    for dataset, seeds, dataset_variants in plan:
        root = args.planetoid_root if dataset in ("cora", "citeseer") else args.adgc_root
        try:
            graph = load_graph(dataset, root=root)
        except FileNotFoundError as err:
            log(f"ccgc reproduce: skipping {dataset}: {err}")
            results["datasets"][dataset] = {"skipped": str(err)}
            save()
            continue
        x_smooth = smooth(graph.edge_index, graph.x, 4).to(args.device)
        y = graph.y.to(args.device)
        block: dict[str, Any] = {
            "nodes": graph.num_nodes,
            "edges": graph.num_undirected_edges,
            "clusters": graph.num_clusters,
            "baselines": {"kmeans_x": [], "kmeans_xs": [], "spherical_kmeans_xs": []},
            "ccgc": {},
            "scgc": [],
        }
        results["datasets"][dataset] = block
        for seed in range(args.seed_start, args.seed_start + (0 if args.no_baselines else seeds)):
            for name, metrics in kmeans_baselines(graph, x_smooth.cpu(), seed).items():
                block["baselines"][name].append(metrics)
        save()
        for variant in dataset_variants:
            cfg = variant_config(variant, args.epochs)
            block["ccgc"][variant] = []
            for seed in range(args.seed_start, args.seed_start + seeds):
                start = time.perf_counter()
                run = train_ccgc(
                    x_smooth, graph.num_clusters, y, cfg, seed=seed, keep_embedding=seed == args.seed_start
                )
                record = {**run.to_dict(), "seed": seed, "wall_s": time.perf_counter() - start}
                record["timings"] = {k: v for k, v in record["timings"].items() if k != "config"}
                block["ccgc"][variant].append(record)
                log(
                    f"{dataset} {variant} seed {seed}: best ACC {run.best['acc']:.2f} NMI {run.best['nmi']:.2f}"
                    f" | last ACC {run.last['acc']:.2f} NMI {run.last['nmi']:.2f} ({record['wall_s']:.0f} s)"
                )
                if seed == args.seed_start and run.embedding is not None:
                    from ccgc.plots import save_embedding_pca

                    save_embedding_pca(
                        run.embedding.cpu(),
                        run.labels.cpu(),
                        out_dir / f"{dataset}_{variant}_seed0_pca.png",
                        title=f"CCGC {variant} on {dataset} (seed 0)",
                    )
                save()
        for seed in range(args.seed_start, args.seed_start + args.scgc_seeds):
            run = run_scgc(
                graph, seed=seed, epochs=args.epochs, legacy_accumulate_grads=True, device=args.device
            )
            run = {k: v for k, v in run.items() if k != "timings"} | {"seed": seed}
            block["scgc"].append(run)
            log(
                f"{dataset} SCGC seed {seed}: best ACC {run['best']['acc']:.2f} last ACC {run['last']['acc']:.2f}"
            )
            save()
    save()
    print(render_markdown(results))
    log(f"ccgc reproduce: wrote {out_dir / 'results.md'} and results.json")
    return 0
