"""GPU smoke test: a few CCGC epochs on CUDA under bf16 autocast (used by ``make gpu-smoke``)."""

from __future__ import annotations

import time


def gpu_smoke() -> str:
    """Run 15 epochs (10 warm-up + 5 cluster-guided) on a generated 20k-node sparse SBM; one summary line."""
    try:
        import torch
    except ImportError as err:  # pragma: no cover
        raise ImportError("ccgc gpu_smoke needs torch") from err
    if not torch.cuda.is_available():
        raise RuntimeError("ccgc gpu_smoke: CUDA is not available")
    from ccgc.engine import CCGCConfig, train_ccgc
    from ccgc.graphs import sparse_sbm
    from ccgc.smoothing import smooth

    device = torch.device("cuda")
    graph = sparse_sbm(20_000, 200_000, 8, homophily=0.8, num_features=64, feature_signal=1.0, seed=0)
    x = smooth(graph.edge_index.to(device), graph.x.to(device), 4)
    cfg = CCGCConfig(epochs=15, warmup_epochs=9, recluster_every=5)
    start = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        run = train_ccgc(x, graph.num_clusters, graph.y.to(device), cfg, seed=0)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    losses = [h["loss"] for h in run.history if "loss" in h]
    assert all(torch.isfinite(torch.tensor(losses))), "non-finite loss"
    return (
        f"ccgc gpu-smoke: {torch.cuda.get_device_name(0)} bf16, N=20000, 15 epochs in {elapsed:.1f} s, "
        f"loss {losses[0]:.4f}->{losses[-1]:.2f}, best ACC {run.best['acc']:.1f}, last ACC {run.last['acc']:.1f}"
    )
