"""LightningModule: Lightning hooks around :class:`ccgc.engine.CCGCLoop` (spec §2.12), manual optimisation.

The protocol itself (objective, zero_grad/backward/step, re-clustering, best/last) lives in the loop, shared with
``ccgc.engine.train_ccgc`` (``reproduce``): ``ccgc train`` and ``reproduce`` give identical metrics for one seed.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pytorch_lightning import LightningModule

from ccgc.engine import CCGCConfig, CCGCLoop, make_encoder, run_generator
from ccgc.evaluate import METRICS
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
        pos_normalization: Literal["pairs", "clusters"] = "pairs",
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
            pos_normalization: ``pairs`` (package default, variant ``stable``): L_pos is the mean of 2 − 2cos over
                the positive pairs; ``clusters`` (variant ``paper``, the paper's and official code's loss): their
                sum divided by K. With the sum, α·L_neg is outweighed by a factor ≈ #pairs/K and the correctly
                optimised Cora/CiteSeer embeddings collapse late in training (README); the mean does not.
                ``legacy`` implies ``clusters``.
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
        self._init_seed = torch.initial_seed() % 2**63  # seed_everything ran before the CLI built the module
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
        self.loop: CCGCLoop | None = None
        self.seed: int | None = None
        self._restored: dict[str, Any] = {}
        self._evaluated: dict[str, float] | None = None
        self._state_applied = False
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
            # the run's seed (``seed_everything``), as ``reproduce`` uses it: same initial weights, same draws
            self.seed = self._init_seed
            self.encoder = make_encoder(datamodule.in_features, self.cfg, self.seed)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        assert self.encoder is not None
        return torch.optim.Adam(self.encoder.parameters(), lr=self.cfg.lr)

    def _loop(self, device: torch.device) -> CCGCLoop:
        """The shared protocol loop, created on the features' device on first use.

        After ``evaluate``/``predict --ckpt`` it continues from the checkpoint's generator state, so k-means on
        the stored weights repeats the training run's final clustering (``last``) draw for draw.
        """
        if self.loop is None:
            assert self.num_clusters is not None
            seed = self.seed if self.seed is not None else torch.initial_seed() % 2**63
            generator = run_generator(device, seed)
            state = self._restored.get("generator_state")
            if state is not None and self._restored.get("generator_device") == device.type:
                generator.set_state(state)
                self._state_applied = True
            self.loop = CCGCLoop(self.cfg, self.num_clusters, generator)
            if self._restored.get("pseudo_labels") is not None and self._restored.get("dis") is not None:
                self.loop.labels = self._restored["pseudo_labels"].to(device)
                self.loop.dis = self._restored["dis"].to(device)
            self.loop.tracker.candidates = list(self._restored.get("candidates") or [])
        return self.loop

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x, y = batch["x"], batch["y"]
        assert self.encoder is not None
        loop = self._loop(x.device)
        if loop.labels is None:
            loop.pretrain(x, y)
        epoch = self.current_epoch
        self._last_epoch = epoch
        out = loop.step(self.encoder, self.optimizers(), x, epoch, backward=self.manual_backward)
        self._skipped = out.skipped
        if out.skipped:
            return None
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
        metrics = self._loop(x.device).recluster(self.encoder, x, epoch, y)
        if metrics is not None:
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
        loop = self._loop(x.device)
        embedding, result = loop.finish(self.encoder, x, self._last_epoch, y)
        run_dir = current_run_dir()
        if run_dir is not None and self.trainer.is_global_zero:
            write_metrics(run_dir, {**loop.tracker.summary(), "candidates": loop.tracker.candidates})
            if self.plot:
                from ccgc.plots import save_embedding_pca

                save_embedding_pca(embedding.cpu(), result.labels.cpu(), run_dir / "embedding_pca.png")

    # ------------------------------------------------------------------ evaluate / predict
    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        assert self.encoder is not None
        x, y = batch["x"], batch["y"]
        if not y.numel():
            raise UserError("the dataset has no labels, so there is nothing to score (use `ccgc predict`)")
        loop = self._loop(x.device)
        loop.finish(self.encoder, x, self._restored.get("epoch", -1), y)
        metrics = loop.tracker.last
        assert metrics is not None
        self._evaluated = {k: metrics[k] for k in METRICS}
        self.log_dict({f"test/{k}": v for k, v in self._evaluated.items()}, batch_size=1)

    def on_test_end(self) -> None:
        """The exact (float64) metrics next to the logged ``test/*`` (which Lightning stores as float32)."""
        from paperlab_core.logging import current_run_dir, write_metrics

        run_dir = current_run_dir()
        evaluated = self._evaluated
        if run_dir is not None and evaluated is not None and self.trainer.is_global_zero:
            # False when the checkpoint has no generator state or was trained on another device type (CUDA vs
            # CPU): then k-means draws afresh and the numbers are close to, not equal to, the run's `last`
            write_metrics(
                run_dir, {"evaluate": {**evaluated, "training_generator_state": self._state_applied}}
            )

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        assert self.encoder is not None
        x = batch["x"]
        embedding, result = self._loop(x.device).finish(self.encoder, x, -1, None)
        return {"labels": result.labels.cpu(), "embedding": embedding.cpu()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        loop = self.loop
        checkpoint["ccgc"] = {
            "pseudo_labels": loop.labels if loop else None,
            "dis": loop.dis if loop else None,
            "candidates": loop.tracker.candidates if loop else [],
            "generator_state": loop.generator.get_state() if loop else None,
            "generator_device": loop.generator.device.type if loop else None,
            "seed": self.seed,
            "epoch": self._last_epoch,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored = dict(checkpoint.get("ccgc") or {})
        self.seed = self._restored.get("seed")
        self.loop = None
