"""The CCGC training loop (spec §2.8) as plain torch, shared by the LightningModule and ``reproduce``.

X̃ ← H^t X;  labels, dis ← kmeans(X̃)                      (pre-training candidate)
for epoch in 0 … epochs−1:
    Z1, Z2 ← encoders(X̃)
    epoch ≤ warmup_epochs: L ← L_warm(Z1, Z2)
    else: H ← high-confidence(dis, τ); L ← L_pos + α·L_neg  (skip the epoch if degenerate)
    zero grads unless legacy_accumulate_grads; backward; Adam step
    epoch % recluster_every == 0: labels, dis ← kmeans((Z1+Z2)/2)  → metrics candidate
last ← kmeans(E) after the final epoch
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch

from ccgc.evaluate import ProtocolTracker, clustering_metrics
from ccgc.kmeans import KMeansResult, kmeans
from ccgc.losses import (
    ccgc_loss,
    high_confidence_mask,
    scgc_loss,
    warmup_identity_loss,
    warmup_identity_loss_linear,
)
from ccgc.models import SiameseLinearEncoder
from paperlab_core.errors import ConfigError


@dataclass
class CCGCConfig:
    """Hyper-parameters of one run: official defaults (spec §2.10) with the package's default L_pos, the per-pair
    mean (variant ``stable``; ``pos_normalization="clusters"`` is the paper's Σ/K, variant ``paper``)."""

    dims: int = 500
    lr: float = 1e-4
    epochs: int = 400
    tau: float = 0.5
    alpha: float = 0.5
    warmup_epochs: int = 50
    recluster_every: int = 10
    pos_subsample: float = 0.8
    pos_normalization: str = "pairs"
    kmeans_n_init: int = 4
    kmeans_max_iter: int = 500
    legacy_accumulate_grads: bool = False
    legacy_skip_first_cluster: bool = False
    legacy_kmeans_init: bool = False
    method: str = "ccgc"
    noise_std: float = 0.01

    def __post_init__(self) -> None:
        """Reject values no run can use (one-line :class:`ConfigError`, e.g. ``--model.tau 2``)."""
        checks = {
            "dims": self.dims >= 1,
            "lr": self.lr > 0,
            "epochs": self.epochs >= 1,
            "tau": 0 < self.tau <= 1,
            "alpha": self.alpha >= 0,
            "warmup_epochs": self.warmup_epochs >= 0,
            "recluster_every": self.recluster_every >= 1,
            "pos_subsample": 0 < self.pos_subsample <= 1,
            "kmeans_n_init": self.kmeans_n_init >= 1,
            "kmeans_max_iter": self.kmeans_max_iter >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            expected = "dims, epochs, recluster_every, kmeans_* >= 1; lr > 0; tau, pos_subsample in (0, 1]; "
            raise ConfigError(
                f"bad value of {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)} "
                f"(expected {expected}alpha, warmup_epochs >= 0)"
            )
        if self.pos_normalization not in ("pairs", "clusters"):
            raise ConfigError(f"pos_normalization {self.pos_normalization!r} (expected pairs or clusters)")

    @classmethod
    def legacy(cls, **kwargs: Any) -> CCGCConfig:
        """The parity configuration: the three legacy flags on and the official L_pos = Σ/K (spec §2.9)."""
        return cls(
            legacy_accumulate_grads=True,
            legacy_skip_first_cluster=True,
            legacy_kmeans_init=True,
            pos_normalization="clusters",
            **kwargs,
        )


class EpochLoss(NamedTuple):
    loss: torch.Tensor
    pos: float
    neg: float
    phase: str
    skipped: bool


def cluster_embedding(x: torch.Tensor, k: int, cfg: CCGCConfig, generator: torch.Generator) -> KMeansResult:
    """k-means as configured (k-means++ restarts or the official initialisation)."""
    return kmeans(
        x.float(),
        k,
        n_init=cfg.kmeans_n_init,
        max_iter=cfg.kmeans_max_iter,
        generator=generator,
        legacy_init_rule=cfg.legacy_kmeans_init,
    )


def epoch_objective(
    model: SiameseLinearEncoder,
    x: torch.Tensor,
    epoch: int,
    cfg: CCGCConfig,
    num_clusters: int,
    pseudo_labels: torch.Tensor | None,
    dis: torch.Tensor | None,
    generator: torch.Generator | None,
    edge_index_hat: torch.Tensor | None = None,
) -> EpochLoss:
    """Forward pass and loss of one epoch: warm-up (epoch ≤ warmup_epochs), cluster-guided, or SCGC's.

    In cluster-guided epochs only the high-confidence rows of X̃ reach the loss, so only those rows are encoded
    (the loss, its gradients and the random draws are the same as encoding every node; about half the cost at
    τ = 0.5).
    """
    if cfg.method == "scgc":
        if edge_index_hat is None:
            raise ValueError("the SCGC objective needs the edges of A + I")
        z1, z2 = model(x)
        return EpochLoss(scgc_loss(z1, z2, edge_index_hat), float("nan"), float("nan"), "scgc", False)
    if epoch <= cfg.warmup_epochs:
        if model.noise_std == 0 and x.size(1) + 1 < model.view1.out_features:
            loss = warmup_identity_loss_linear(
                x, model.view1.weight, model.view1.bias, model.view2.weight, model.view2.bias
            )
        else:
            z1, z2 = model(x)
            loss = warmup_identity_loss(z1, z2)
        return EpochLoss(loss, float("nan"), float("nan"), "warmup", False)
    if pseudo_labels is None or dis is None:
        raise RuntimeError("cluster-guided epochs need pseudo-labels from a previous k-means")
    rows = high_confidence_mask(dis, cfg.tau).nonzero().flatten()
    z1, z2 = model(x[rows])
    out = ccgc_loss(
        z1,
        z2,
        pseudo_labels[rows],
        torch.ones(rows.numel(), dtype=torch.bool, device=x.device),
        alpha=cfg.alpha,
        num_clusters=num_clusters,
        pos_subsample=cfg.pos_subsample,
        generator=generator,
        skip_first_cluster=cfg.legacy_skip_first_cluster,
        pos_normalization=cfg.pos_normalization,
    )
    return EpochLoss(out.loss, out.pos.item(), out.neg.item(), "contrastive", out.skipped)


@dataclass
class RunResult:
    """Protocol summary, loss history and timings of one run."""

    best: dict[str, Any] | None
    best_trained: dict[str, Any] | None
    last: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    embedding: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_trained": self.best_trained,
            "last": self.last,
            "timings": self.timings,
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _labelled(y: torch.Tensor | None) -> bool:
    return y is not None and y.numel() > 0


class CCGCLoop:
    """The protocol of one run (spec §2.8), step by step: the one implementation behind ``train_ccgc`` (the fast
    loop of ``reproduce``/``sweep``/``trace``) and :class:`ccgc.module.CCGCModule` (``ccgc train``).

    It owns the pseudo-labels, ``dis``, the run's generator (k-means and positive subsampling draw from it, on
    the features' device) and the best / best_trained / last tracker. ``y`` may be ``None`` or empty (no labels:
    nothing is scored).
    """

    def __init__(self, cfg: CCGCConfig, num_clusters: int, generator: torch.Generator) -> None:
        self.cfg = cfg
        self.num_clusters = num_clusters
        self.generator = generator
        self.tracker = ProtocolTracker()
        self.labels: torch.Tensor | None = None
        self.dis: torch.Tensor | None = None

    def kmeans(self, x: torch.Tensor) -> KMeansResult:
        return cluster_embedding(x, self.num_clusters, self.cfg, self.generator)

    def pretrain(self, x: torch.Tensor, y: torch.Tensor | None = None) -> KMeansResult:
        """k-means on X̃: the first pseudo-labels and the pre-training candidate of ``best``."""
        result = self.kmeans(x)
        self.labels, self.dis = result.labels, result.dis
        if _labelled(y):
            self.tracker.add(-1, clustering_metrics(y.cpu(), result.labels.cpu()), pretrain=True)
        return result

    def step(
        self,
        model: SiameseLinearEncoder,
        optimizer: Any,
        x: torch.Tensor,
        epoch: int,
        edge_index_hat: torch.Tensor | None = None,
        backward: Callable[[torch.Tensor], None] | None = None,
    ) -> EpochLoss:
        """One epoch's objective, then (unless the epoch is skipped) zero_grad (not in legacy), backward, step."""
        if self.labels is None:
            raise RuntimeError("call pretrain() before the first step")
        out = epoch_objective(
            model,
            x,
            epoch,
            self.cfg,
            self.num_clusters,
            self.labels,
            self.dis,
            self.generator,
            edge_index_hat,
        )
        if out.skipped:
            return out
        if not self.cfg.legacy_accumulate_grads:
            optimizer.zero_grad(set_to_none=True)
        if backward is None:
            out.loss.backward()
        else:
            backward(out.loss)
        optimizer.step()
        return out

    def reclusters(self, epoch: int, out: EpochLoss) -> bool:
        """Whether this epoch re-clusters (``epoch % recluster_every == 0``; never after a skipped epoch)."""
        return not out.skipped and epoch % self.cfg.recluster_every == 0

    def recluster(
        self, model: SiameseLinearEncoder, x: torch.Tensor, epoch: int, y: torch.Tensor | None = None
    ) -> dict[str, float] | None:
        """k-means on E = (Z1+Z2)/2 after the step: new pseudo-labels/``dis`` and a candidate of ``best``."""
        result = self.kmeans(model.embed(x))
        self.labels, self.dis = result.labels, result.dis
        if not _labelled(y):
            return None
        metrics = clustering_metrics(y.cpu(), result.labels.cpu())
        self.tracker.add(epoch, metrics)
        return metrics

    def finish(
        self, model: SiameseLinearEncoder, x: torch.Tensor, epoch: int, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, KMeansResult]:
        """k-means on the final embedding (``last``; does not affect training). Returns (E, result)."""
        embedding = model.embed(x)
        result = self.kmeans(embedding)
        if _labelled(y):
            self.tracker.last = {"epoch": epoch, **clustering_metrics(y.cpu(), result.labels.cpu())}
        return embedding, result


def make_encoder(in_features: int, cfg: CCGCConfig, seed: int) -> SiameseLinearEncoder:
    """The two encoders, initialised from the global torch RNG re-seeded with ``seed`` (same in both loops)."""
    torch.manual_seed(seed)
    return SiameseLinearEncoder(
        in_features, cfg.dims, noise_std=cfg.noise_std if cfg.method == "scgc" else 0.0
    )


def run_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """The run's generator (k-means initialisation, positive subsampling) on the features' device."""
    return torch.Generator(device=device).manual_seed(seed)


def train_ccgc(
    x_smooth: torch.Tensor,
    num_clusters: int,
    y: torch.Tensor | None = None,
    cfg: CCGCConfig | None = None,
    seed: int = 0,
    edge_index_hat: torch.Tensor | None = None,
    keep_embedding: bool = False,
    progress: bool = False,
    on_step: Callable[[int, SiameseLinearEncoder, EpochLoss], dict[str, Any] | None] | None = None,
) -> RunResult:
    """One full CCGC (or SCGC) run on pre-smoothed features; metrics need ``y``.

    The same :class:`CCGCLoop` as ``ccgc train`` (tested: identical metrics for one seed). ``on_step(epoch,
    model, loss)`` is called after every optimiser step; a returned dict is merged into that epoch's history
    record (``ccgc trace`` uses it). Re-clustering epochs also record their metrics there.
    """
    cfg = cfg or CCGCConfig()
    device = x_smooth.device
    if num_clusters > x_smooth.size(0):
        raise ConfigError(f"cannot form {num_clusters} clusters from {x_smooth.size(0)} nodes")
    if y is not None and y.numel() != x_smooth.size(0):
        raise ConfigError(f"labels have {y.numel()} entries but the features have {x_smooth.size(0)} rows")
    loop = CCGCLoop(cfg, num_clusters, run_generator(device, seed))
    model = make_encoder(x_smooth.size(1), cfg, seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    timings: dict[str, list[float]] = {"warmup": [], "contrastive": [], "scgc": [], "recluster": []}

    start = time.perf_counter()
    loop.pretrain(x_smooth, y)
    _sync(device)
    timings_pre = time.perf_counter() - start
    history: list[dict[str, Any]] = []
    epochs = range(cfg.epochs)
    if progress:
        from paperlab_core.logging import track

        epochs = track(epochs, f"{cfg.method} seed {seed}")
    model.train()
    for epoch in epochs:
        t0 = time.perf_counter()
        out = loop.step(model, optimizer, x_smooth, epoch, edge_index_hat)
        if out.skipped:
            history.append({"epoch": epoch, "phase": out.phase, "skipped": True})
            continue
        _sync(device)
        timings[out.phase].append(time.perf_counter() - t0)
        history.append(
            {"epoch": epoch, "phase": out.phase, "loss": out.loss.item(), "pos": out.pos, "neg": out.neg}
        )
        if on_step is not None:
            history[-1].update(on_step(epoch, model, out) or {})
        if loop.reclusters(epoch, out):
            t1 = time.perf_counter()
            metrics = loop.recluster(model, x_smooth, epoch, y)
            _sync(device)
            timings["recluster"].append(time.perf_counter() - t1)
            history[-1].update(metrics or {})
    embedding, final = loop.finish(model, x_smooth, cfg.epochs - 1, y)
    summary = loop.tracker.summary()
    return RunResult(
        best=summary["best"],
        best_trained=summary["best_trained"],
        last=summary["last"],
        history=history,
        timings={
            "pretrain_kmeans_s": timings_pre,
            **{k: v for k, v in timings.items()},
            "config": asdict(cfg),
        },
        embedding=embedding if keep_embedding else None,
        labels=final.labels,
    )
