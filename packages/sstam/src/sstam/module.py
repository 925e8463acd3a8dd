"""LightningModule of ``sstam train | evaluate``: wiring of the detectors, the masked loss and the fusion fit.

Training optimises the spatial and/or temporal detectors (``--stage``) with AdamW and a cosine schedule; at the
end of training the fusion is fitted on the data module's fusion items (the proxy ladder or a MOS CSV) with the
freshly trained detectors, stored in the checkpoint and written as a bundle folder into the run folder.
``evaluate`` (test) reports per-PEA detector AUC/accuracy on held-out content, the spatial monotonicity and
cross-talk, the temporal AUCs of spec §6.11 and, with ``--data.mos_csv``, the fusion's content-disjoint CV.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule

from paperlab_core.logging import log
from sstam.config import FusionConfig, PipelineConfig, SpatialConfig, TemporalConfig
from sstam.losses import masked_bce
from sstam.metrics import roc_auc
from sstam.models import SpatialDetector, SplitTemporalDetector, TemporalDetector, build_temporal
from sstam.models.temporal import TEMPORAL_TRAIN
from sstam.synth import SPATIAL_PEAS, TEMPORAL_PEAS


def _plain(obj: Any) -> dict[str, Any]:
    return asdict(obj) if not isinstance(obj, dict) else dict(obj)


class SSTAMModule(LightningModule):
    """Spatial + temporal PEA detectors and, after training, the fitted fusion.

    Args:
        spatial: timm backbone and layout of the spatial detectors.
        temporal: TimeSformer configuration; ``variant`` timesformer_hf (baseline) | sstam_ours (ours).
        pipeline: inference settings used when the fusion is fitted and stored in the bundle.
        fusion: regressor (svr | nnls) and feature set (all | spatial | temporal).
        lr / weight_decay: AdamW; the learning rate follows a cosine schedule over all steps.
        init_from: start from the detectors of a bundle folder, a ``.ckpt`` or ``default``.
        eval_splits: content-disjoint splits of the fusion CV in ``evaluate`` (``--n-splits``).
        temporal_train: which temporal model(s) train — ``both`` (default), or with ``temporal.split: true`` only
            ``flickering`` or only ``floating`` (ours, 0.6: the other is frozen as ``init_from`` gave it, its
            weights bit-identical after training; needs ``init_from``).
    """

    def __init__(
        self,
        spatial: SpatialConfig = SpatialConfig(),
        temporal: TemporalConfig = TemporalConfig(),
        pipeline: PipelineConfig = PipelineConfig(),
        fusion: FusionConfig = FusionConfig(),
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        init_from: str | None = None,
        eval_splits: int = 100,
        temporal_train: str = "both",
    ) -> None:
        super().__init__()
        check_temporal_train(temporal_train, bool(_plain(temporal).get("split", False)), init_from)
        self.save_hyperparameters(
            {
                "spatial": _plain(spatial),
                "temporal": _plain(temporal),
                "pipeline": _plain(pipeline),
                "fusion": _plain(fusion),
                "lr": lr,
                "weight_decay": weight_decay,
                "init_from": init_from,
                "eval_splits": eval_splits,
                "temporal_train": temporal_train,
            }
        )
        self.spatial_config = SpatialConfig(**_plain(spatial))
        self.temporal_config = TemporalConfig(**_plain(temporal))
        from sstam.config import pipeline_from_dict

        self.pipeline_config = pipeline_from_dict(_plain(pipeline))
        self.fusion_config = FusionConfig(**_plain(fusion))
        self.spatial = SpatialDetector(
            self.spatial_config.backbone, self.spatial_config.layout, inputs=self.spatial_config.inputs
        )
        self.temporal = build_temporal(_plain(self.temporal_config))
        self.fusion_json: dict[str, Any] | None = None
        self.fusion_cv: dict[str, Any] = {}
        self.trained_stage = ""
        if init_from:
            self._init_detectors(init_from)
        if temporal_train != "both":  # check_temporal_train: a split model
            self.temporal.freeze([name for name in TEMPORAL_PEAS if name != temporal_train])
        self._outputs: dict[str, list] = {}

    # ------------------------------------------------------------------ geometry read by the data module
    @property
    def patch(self) -> int:
        return self.pipeline_config.patch

    @property
    def window(self) -> int:
        return self.temporal_config.num_frames

    @property
    def cube(self) -> int:
        return self.temporal_config.image_size

    def _init_detectors(self, source: str) -> None:
        from paperlab_core.errors import ConfigError
        from sstam.bundle import load_model

        model = load_model(source)
        self.spatial.load_state_dict(model.engine.spatial.state_dict())
        source_temporal = model.engine.temporal
        if source_temporal is not None and source_temporal.variant == self.temporal.variant:
            source_split = isinstance(source_temporal, SplitTemporalDetector)
            if isinstance(self.temporal, SplitTemporalDetector) and not source_split:
                self.temporal.load_unsplit(source_temporal.state_dict())  # both models start from one
            elif source_split and not isinstance(self.temporal, SplitTemporalDetector):
                raise ConfigError(
                    f"model.init_from {source} has split temporal models (flickering, floating): "
                    "set model.temporal.split true"
                )
            else:
                self.temporal.load_state_dict(source_temporal.state_dict())
        if model.fusion is not None:
            self.fusion_json = model.fusion.to_json()
        log(f"sstam: detectors initialised from {source}")

    def bundle_config(self) -> dict[str, Any]:
        temporal = asdict(self.temporal_config)
        if not temporal["split"]:  # bundles without split models keep the pre-0.6 config.yaml
            del temporal["split"]
        return {
            "spatial": asdict(self.spatial_config),
            "temporal": temporal,
            "pipeline": asdict(self.pipeline_config),
        }

    def _stage(self) -> str:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return getattr(datamodule, "stage", "all")

    # ------------------------------------------------------------------ steps
    def _spatial_loss(
        self, batch: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        patches, labels = batch[0], batch[1]
        logits = self.spatial(SpatialDetector.prepare(patches))
        loss, per_head = masked_bce(logits, labels)
        return loss, per_head, logits

    def _temporal_loss(
        self, batch: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cubes, labels, has_prev = batch[0], batch[1], batch[2]
        logits = self.temporal(TemporalDetector.prepare(cubes), has_prev)
        loss, per_head = masked_bce(logits, labels)
        return loss, per_head, logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        stage = self._stage()
        if stage == "fusion":
            return None
        total = None
        if "spatial" in batch and batch["spatial"] is not None and stage in ("all", "spatial"):
            loss, _, _ = self._spatial_loss(batch["spatial"])
            self.log("train/spatial_loss", loss, prog_bar=True, sync_dist=True)
            total = loss
        if "temporal" in batch and batch["temporal"] is not None and stage in ("all", "temporal"):
            loss, _, _ = self._temporal_loss(batch["temporal"])
            self.log("train/temporal_loss", loss, prog_bar=True, sync_dist=True)
            total = loss if total is None else total + loss
        if total is not None:
            self.log("train/loss", total, sync_dist=True)
        return total

    def _collect(self, prefix: str, batch: Any, dataloader_idx: int) -> None:
        names = self.trainer.datamodule.loader_names.get(prefix, ["spatial"])
        branch = names[dataloader_idx] if dataloader_idx < len(names) else "spatial"
        if branch == "spatial":
            loss, _, logits = self._spatial_loss(batch)
            extra = (batch[2], batch[3])
        else:
            loss, _, logits = self._temporal_loss(batch)
            extra = (batch[3], batch[4])
        self.log(f"{prefix}/{branch}_loss", loss, add_dataloader_idx=False, sync_dist=True)
        self._outputs.setdefault(branch, []).append(
            (torch.sigmoid(logits.float()).cpu(), batch[1].cpu(), extra[0].cpu(), extra[1].cpu())
        )

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect("val", batch, dataloader_idx)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect("test", batch, dataloader_idx)

    def _gathered(self, branch: str) -> tuple[np.ndarray, ...] | None:
        parts = self._outputs.get(branch)
        if not parts:
            return None
        return tuple(torch.cat([p[i] for p in parts]).numpy() for i in range(4))

    def _detector_metrics(self, prefix: str) -> dict[str, float]:
        metrics: dict[str, float] = {}
        spatial = self._gathered("spatial")
        if spatial is not None:
            from sstam.evaluate import spatial_detector_metrics

            metrics.update(spatial_detector_metrics(*spatial, prefix=prefix))
        temporal = self._gathered("temporal")
        if temporal is not None:
            from sstam.evaluate import temporal_detector_metrics

            kinds = getattr(self.trainer.datamodule, "test_sets" if prefix == "test" else "val_sets")[1]
            names = sorted(set(kinds.kind.tolist())) if kinds is not None else []
            metrics.update(temporal_detector_metrics(*temporal, kind_names=names, prefix=prefix))
        self._outputs = {}
        return metrics

    def on_validation_epoch_end(self) -> None:
        metrics = self._detector_metrics("val")
        for key, value in metrics.items():
            if np.isfinite(value) and (key.endswith("_auc") or key.endswith("auc_mean")):
                self.log(key, float(value), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        metrics = self._detector_metrics("test")
        if self.trainer.datamodule.hparams.mos_csv is not None:
            metrics.update(self.fusion_cross_validation())
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and np.isfinite(value):
                self.log(key, float(value), sync_dist=True)
        root = Path(self.trainer.default_root_dir)
        if self.trainer.is_global_zero and (root / "config.yaml").is_file():  # a paperlab run folder
            self._write_test_results(metrics)

    def _write_test_results(self, metrics: dict[str, float]) -> None:
        """``<run>/results.json``: the held-out detector metrics with the acceptance gates of issue 21."""
        import sys

        from paperlab_core.logging import write_json_atomic
        from paperlab_core.results import Table, results_record
        from paperlab_core.runtime import environment, environment_line

        table = Table(
            ["metric", "value", "gate", "pass"],
            formats={"value": ".3f"},
            title="held-out detector metrics (sstam evaluate)",
        )
        gates = {f"test/{name}_monotonicity": 0.9 for name in SPATIAL_PEAS}
        gates.update({"test/flickering_auc_equal_quality": 0.9, "test/floating_auc": 0.9})
        for key in sorted(metrics):
            value = metrics[key]
            if not isinstance(value, (int, float)) or not np.isfinite(value):
                continue
            gate = gates.get(key)
            if key == "test/crosstalk_mean":
                table.add(key, float(value), "< min own-severity", None)
                continue
            # the Spearman values are exact fractions rounded once (metrics.spearman_exact): no tolerance
            passed = None if gate is None else ("yes" if value >= gate else "no")
            table.add(key, float(value), None if gate is None else f"≥ {gate:g}", passed)
        accelerator = "cuda" if self.device.type == "cuda" else "cpu"
        document = results_record(
            " ".join(["sstam", *sys.argv[1:]]),
            environment_line(environment(accelerator, packages={"sstam": _version()})),
            None,
            {"main": table},
            [{k: v for k, v in metrics.items() if isinstance(v, (int, float))}],
            package="sstam",
        )
        write_json_atomic(Path(self.trainer.default_root_dir) / "results.json", document)

    # ------------------------------------------------------------------ fusion
    def engine(self):
        from sstam.score import Engine

        return Engine(self.spatial, self.temporal, self.pipeline_config, self.device)

    def fusion_features(self, items: list) -> np.ndarray:
        """Six intensities per fusion item with the current detectors."""
        from paperlab_core.logging import track
        from sstam.fusion import feature_matrix
        from sstam.score import SSTAM
        from sstam.video_io import open_video

        model = SSTAM(self.engine(), None)
        rows = []
        for item in track(items, "scoring the fusion items"):
            frames = (
                item.frames
                if item.frames is not None
                else open_video(item.path, item.size, item.fps, item.pix_fmt)
            )
            rows.append(model.engine.analyze(frames, source=item.name).intensities(self.pipeline_config.agg))
        self.spatial.train()
        self.temporal.train()
        return feature_matrix(rows)

    def fit_fusion_now(self) -> None:
        from sstam.codec import have_codecs
        from sstam.fusion import fit_fusion

        datamodule = self.trainer.datamodule
        if datamodule.hparams.mos_csv is None and not have_codecs():
            log(
                "sstam: warning: PyAV/libx264 missing: the fusion is not fitted (the checkpoint has detectors only)"
            )
            return
        start = time.perf_counter()
        run_dir = Path(self.trainer.default_root_dir) if self.trainer.default_root_dir else None
        items, label_source, training_set = datamodule.fusion_items(run_dir)
        x = self.fusion_features(items)
        cfg = self.fusion_config
        fusion, model = fit_fusion(
            x,
            [i.label for i in items],
            [i.content for i in items],
            cfg.kind,
            cfg.features,
            datamodule.hparams.score_direction if datamodule.hparams.mos_csv else "higher_better",
            label_source,
            training_set,
            cfg.inner_folds,
        )
        self.fusion_json = fusion.to_json()
        self._sklearn_fusion = model
        from sstam.metrics import srocc

        fitted = srocc(fusion.predict(x), [i.label for i in items])
        log(
            f"sstam: fusion ({cfg.kind}) fitted on {len(items)} items ({label_source}) in "
            f"{time.perf_counter() - start:.0f} s; in-sample SROCC {fitted:.3f}"
        )

    def on_train_end(self) -> None:
        stage = self._stage()
        self.trained_stage = stage
        # a single-detector stage started from a bundle (init_from) has both detectors: fit the fusion too
        if (stage in ("all", "fusion") or self.hparams.init_from) and self.trainer.is_global_zero:
            self.fit_fusion_now()
            self._write_outputs()

    def _write_outputs(self) -> None:
        """Re-save ``last.ckpt`` with the fitted fusion and write ``<run>/bundle/``."""
        from sstam.bundle import save_bundle
        from sstam.fusion import Fusion

        root = Path(self.trainer.default_root_dir)
        last = root / "checkpoints" / "last.ckpt"
        if not self.trainer.fast_dev_run:
            self.trainer.save_checkpoint(last, weights_only=False)  # full state: resumable
        fusion = Fusion.from_json(self.fusion_json) if self.fusion_json else None
        save_bundle(
            root / "bundle",
            self.spatial,
            self.temporal,
            self.bundle_config(),
            fusion,
            self.provenance(),
            getattr(self, "_sklearn_fusion", None),
        )
        log(
            f"sstam: bundle written to {root / 'bundle'} (use it with `sstam score VIDEO --ckpt {root / 'bundle'}`)"
        )

    def provenance(self) -> dict[str, Any]:
        import sys

        from sstam import __version__

        datamodule = getattr(self.trainer, "datamodule", None)
        provenance = {
            "command": " ".join(["sstam", *sys.argv[1:]]) if sys.argv else "",
            "package_version": __version__,
            "stage": self.trained_stage,
            "data": dict(datamodule.hparams) if datamodule is not None else {},
            "model": dict(self.hparams),
            "epochs": int(self.current_epoch),
            "global_step": int(self.global_step),
        }
        if isinstance(self.temporal, SplitTemporalDetector):
            provenance["temporal_models"] = self.split_provenance()
        return provenance

    def split_provenance(self) -> dict[str, Any]:
        """How each of the split temporal models was made: trained here or frozen from ``init_from``, and a
        SHA-256 of its weights (a frozen model's equals the one in ``init_from``)."""
        from sstam.bundle import bundle_sha256, state_sha256

        source = self.hparams.init_from
        out: dict[str, Any] = {
            "init_from": source,
            "init_from_sha256": bundle_sha256(source) if source else None,
        }
        for name in TEMPORAL_PEAS:
            frozen = name in self.temporal.frozen
            how = (
                "frozen (as init_from gave it)"
                if frozen
                else "trained (both heads' losses; its own head used)"
            )
            if not frozen and self.hparams.temporal_train == name:
                how = f"fine-tuned with the {name} loss only"
            out[name] = {
                "how": how,
                "weights_sha256": state_sha256(getattr(self.temporal, name).state_dict()),
            }
        return out

    def fusion_cross_validation(self) -> dict[str, float]:
        from sstam.evaluate import fusion_cv

        datamodule = self.trainer.datamodule
        items, _, _ = datamodule.fusion_items(None)
        x = self.fusion_features(items)
        result = fusion_cv(
            x,
            [i.label for i in items],
            [i.content for i in items],
            self.fusion_config.kind,
            self.fusion_config.features,
            datamodule.hparams.score_direction,
            int(self.hparams.eval_splits),
        )
        return {f"test/fusion_{k}": v for k, v in result.items() if isinstance(v, (int, float))}

    # ------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sstam"] = {
            "config": self.bundle_config(),
            "fusion": self.fusion_json,
            "provenance": self.provenance() if self._trainer is not None else {},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        section = checkpoint.get("sstam") or {}
        self.fusion_json = section.get("fusion")

    def configure_optimizers(self) -> Any:
        # frozen split temporal models (temporal_train) are left out; otherwise every parameter, as before
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def check_temporal_train(temporal_train: str, split: bool, init_from: str | None) -> None:
    """``--model.temporal_train``: one of :data:`TEMPORAL_TRAIN`; training one model only needs split models
    and an ``init_from`` to freeze the other from (a ``ConfigError``: one line on the command line)."""
    from paperlab_core.errors import ConfigError

    if temporal_train not in TEMPORAL_TRAIN:
        raise ConfigError(
            f"model.temporal_train must be one of {', '.join(TEMPORAL_TRAIN)}, got {temporal_train!r}"
        )
    if temporal_train != "both" and not split:
        raise ConfigError(
            f"model.temporal_train {temporal_train} trains one of two split temporal models: "
            "set model.temporal.split true"
        )
    if temporal_train != "both" and not init_from:
        raise ConfigError(
            f"model.temporal_train {temporal_train} freezes the other temporal model as model.init_from gives it: "
            "set model.init_from (e.g. default)"
        )


def _version() -> str:
    from sstam import __version__

    return __version__


__all__ = ["SPATIAL_PEAS", "TEMPORAL_PEAS", "SSTAMModule", "roc_auc"]
