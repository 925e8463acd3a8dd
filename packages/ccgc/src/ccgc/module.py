"""LightningModule: wiring of the CCGC loop (spec §2.12) with manual optimisation; the math is in engine/losses."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pytorch_lightning import LightningModule

from ccgc.engine import CCGCConfig, cluster_embedding, epoch_objective
from ccgc.evaluate import ProtocolTracker, clustering_metrics
from ccgc.models import SiameseLinearEncoder
from paperlab_core.errors import ConfigError, UserError


class CCGCModule(LightningModule):
    """Cluster-guided contrastive graph clustering (Yang et al., AAAI 2023)."""

    def __init__(
        self,
        dims: int = 500,
        lr: float = 1e-4,
        tau: float = 0.5,
        alpha: float = 0.5,
        warmup_epochs: int = 50,
        recluster_every: int = 10,
        pos_subsample: float = 0.8,
        pos_normalization: Literal["pairs", "clusters"] = "clusters",
        kmeans_n_init: int = 4,
        kmeans_max_iter: int = 500,
        legacy: bool = False,
        legacy_accumulate_grads: bool = False,
        legacy_skip_first_cluster: bool = False,
        legacy_kmeans_init: bool = False,
        plot: bool = True,
    ) -> None:
        """
        Args:
            dims: output width of each linear encoder (official 500).
            lr: Adam learning rate (official 1e-4).
            tau: high-confidence fraction kept (official ``threshold`` 0.5).
            alpha: weight of the centre-negative term (official 0.5).
            warmup_epochs: epochs 0..warmup_epochs use the warm-up loss (official 50, i.e. 51 epochs).
            recluster_every: re-cluster (and evaluate) when ``epoch % recluster_every == 0``.
            pos_subsample: fraction of each high-confidence cluster drawn for positive pairs (official 0.8).
            pos_normalization: ``clusters`` (default; paper and official code): L_pos is the sum of 2 − 2cos
                over the positive pairs divided by K; ``pairs`` (config ``stable``): their mean. With the sum,
                α·L_neg is outweighed by a factor ≈ #pairs/K and the corrected optimiser collapses the Cora
                embedding late in training (README); the mean does not. ``legacy`` implies ``clusters``.
            kmeans_n_init: k-means++ restarts (ignored with ``legacy_kmeans_init``).
            kmeans_max_iter: Lloyd iteration cap.
            legacy: shorthand that turns on the three legacy flags (official-code parity).
            legacy_accumulate_grads: never zero gradients (official: no ``zero_grad``).
            legacy_skip_first_cluster: the smallest-label cluster never contributes (official loop bug).
            legacy_kmeans_init: official k-means initialisation (20 candidates, smallest summed distance).
            plot: save a PCA 2-D scatter of the final embedding, coloured by cluster, as ``embedding_pca.png``.
        """
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.cfg = CCGCConfig(
            dims=dims,
            lr=lr,
            tau=tau,
            alpha=alpha,
            warmup_epochs=warmup_epochs,
            recluster_every=recluster_every,
            pos_subsample=pos_subsample,
            pos_normalization="clusters" if legacy else pos_normalization,
            kmeans_n_init=kmeans_n_init,
            kmeans_max_iter=kmeans_max_iter,
            legacy_accumulate_grads=legacy or legacy_accumulate_grads,
            legacy_skip_first_cluster=legacy or legacy_skip_first_cluster,
            legacy_kmeans_init=legacy or legacy_kmeans_init,
        )
        self.plot = plot
        self.encoder: SiameseLinearEncoder | None = None
        self.num_clusters: int | None = None
        self.tracker = ProtocolTracker()
        self.pseudo_labels: torch.Tensor | None = None
        self.dis: torch.Tensor | None = None
        self.generator: torch.Generator | None = None
        self._skipped = False
        self._last_epoch = -1

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "graph"):
            raise ConfigError("CCGCModule needs a CCGCDataModule (it provides the graph and K)")
        if self.trainer.num_devices > 1 or self.trainer.num_nodes > 1:
            raise ConfigError(
                "full-batch training is single-process (use --trainer.devices 1 --trainer.num_nodes 1)"
            )
        datamodule.setup(stage)
        self.num_clusters = datamodule.graph.num_clusters
        if self.encoder is None:
            self.encoder = SiameseLinearEncoder(datamodule.in_features, self.cfg.dims)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        assert self.encoder is not None
        return torch.optim.Adam(self.encoder.parameters(), lr=self.cfg.lr)

    def _kmeans(self, x: torch.Tensor) -> Any:
        if self.generator is None or self.generator.device != x.device:
            self.generator = torch.Generator(device=x.device).manual_seed(torch.initial_seed() % 2**63)
        assert self.num_clusters is not None
        return cluster_embedding(x.float(), self.num_clusters, self.cfg, self.generator)

    def _metrics(self, y: torch.Tensor, labels: torch.Tensor) -> dict[str, float] | None:
        return clustering_metrics(y.cpu(), labels.cpu()) if y.numel() else None

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x, y = batch["x"], batch["y"]
        assert self.encoder is not None and self.num_clusters is not None
        if self.pseudo_labels is None:
            result = self._kmeans(x)
            self.pseudo_labels, self.dis = result.labels, result.dis
            metrics = self._metrics(y, result.labels)
            if metrics is not None:
                self.tracker.add(-1, metrics, pretrain=True)
        epoch = self.current_epoch
        self._last_epoch = epoch
        out = epoch_objective(
            self.encoder, x, epoch, self.cfg, self.num_clusters, self.pseudo_labels, self.dis, self.generator
        )
        self._skipped = out.skipped
        if out.skipped:
            return None
        optimizer = self.optimizers()
        if not self.cfg.legacy_accumulate_grads:
            optimizer.zero_grad()
        self.manual_backward(out.loss)
        optimizer.step()
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=1)
        if out.phase == "contrastive":
            self.log_dict({"train/pos": out.pos, "train/neg": out.neg}, batch_size=1)
        return None

    def on_train_epoch_end(self) -> None:
        epoch = self.current_epoch
        if self._skipped or epoch % self.cfg.recluster_every != 0:
            return
        x, y = self._full_batch()
        assert self.encoder is not None
        result = self._kmeans(self.encoder.embed(x))
        self.pseudo_labels, self.dis = result.labels, result.dis
        metrics = self._metrics(y, result.labels)
        if metrics is not None:
            self.tracker.add(epoch, metrics)
            self.log_dict({f"cluster/{k}": v for k, v in metrics.items()}, batch_size=1)

    def _full_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        datamodule = self.trainer.datamodule
        x = datamodule.x_smooth.to(self.device)
        y = datamodule.graph.y if datamodule.graph.y is not None else torch.empty(0)
        return x, y

    def on_train_end(self) -> None:
        from paperlab_core.logging import current_run_dir, write_metrics

        x, y = self._full_batch()
        assert self.encoder is not None
        embedding = self.encoder.embed(x)
        result = self._kmeans(embedding)
        metrics = self._metrics(y, result.labels)
        if metrics is not None:
            self.tracker.last = {"epoch": self._last_epoch, **metrics}
        run_dir = current_run_dir()
        if run_dir is not None and self.trainer.is_global_zero:
            write_metrics(run_dir, {**self.tracker.summary(), "candidates": self.tracker.candidates})
            if self.plot:
                from ccgc.plots import save_embedding_pca

                save_embedding_pca(embedding.cpu(), result.labels.cpu(), run_dir / "embedding_pca.png")

    # ------------------------------------------------------------------ evaluate / predict
    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        assert self.encoder is not None
        result = self._kmeans(self.encoder.embed(batch["x"]))
        metrics = self._metrics(batch["y"], result.labels)
        if metrics is None:
            raise UserError("the dataset has no labels, so there is nothing to score (use `ccgc predict`)")
        self.log_dict({f"test/{k}": v for k, v in metrics.items()}, batch_size=1)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        assert self.encoder is not None
        embedding = self.encoder.embed(batch["x"])
        return {"labels": self._kmeans(embedding).labels.cpu(), "embedding": embedding.cpu()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ccgc_pseudo_labels"] = self.pseudo_labels
        checkpoint["ccgc_dis"] = self.dis
        checkpoint["ccgc_candidates"] = self.tracker.candidates

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.pseudo_labels = checkpoint.get("ccgc_pseudo_labels")
        self.dis = checkpoint.get("ccgc_dis")
        if self.dis is None:
            self.pseudo_labels = None  # re-cluster on resume
        self.tracker.candidates = list(checkpoint.get("ccgc_candidates") or [])
