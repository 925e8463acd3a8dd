"""Downstream protocols (spec §2.8, ours): one configuration for every initialisation.

* fine-tuning: Linear(D → C) on the readout, AdamW 1e-3 / wd 0.05, cosine with 10 % warm-up, 200 steps, batch
  min(64, n), flips + random affine for every initialisation (scratch included), CE (BCE for multi-label), no
  early stopping;
* linear probe: frozen readout features of un-augmented images, StandardScaler + LogisticRegression(C=1)
  (``probe="spec"``, the spec's protocol); ``probe="val"`` (ours) picks C from ``probe_c_grid`` by the primary metric
  on the val split (ties: the smaller C), the same rule for every initialisation;
* floors: the majority class and pixel logistic regression on the same labelled images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bolt_ssl import augment
from bolt_ssl.data import Dataset, Split, channel_stats
from bolt_ssl.models import TokenViT, ViTConfig
from paperlab_core.errors import ConfigError, MissingFileError, UserError

BACKBONE_KIND = "bolt-backbone"
FINETUNED_KIND = "bolt-finetuned"
IMAGENET_SKIP = "skipped (needs hub weights)"


@dataclass
class ProtocolConfig:
    """The downstream protocol shared by every initialisation (fine-tune and linear probe)."""

    steps: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.1
    batch: int = 64
    augment: bool = True
    flips: bool = True
    probe_c: float = 1.0
    probe_max_iter: int = 3000
    #: "spec" = LogisticRegression(C=probe_c) (spec §2.8); "val" = C chosen on the val split (ours)
    probe: str = "spec"
    probe_c_grid: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    #: probe feature set (``models.PROBE_FEATURES``): "readout" = the backbone's readout (spec §2.8); others ours
    probe_features: str = "readout"
    #: layer-wise lr decay of fine-tuning (ours; 1.0 = the spec's single lr): head lr, block i of L gets
    #: lr·d^(L−i), the embeddings (patch, CLS, positions) lr·d^(L+1) — the same rule for every initialisation
    layer_decay: float = 1.0
    eval_batch: int = 500

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Init:
    """A backbone initialisation: its name, architecture and (unless scratch) its encoder weights."""

    name: str
    vit: ViTConfig
    state_dict: dict[str, torch.Tensor] | None = None
    source: str = ""


# --------------------------------------------------------------------------------------------- initialisations
def _encoder_from_lightning(blob: dict[str, Any], path: Path, branch: str) -> Init:
    meta = blob.get("paperlab") or {}
    model_cfg = (meta.get("config") or {}).get("model") or {}
    if "vit" not in model_cfg:
        raise UserError(f"{path}: not a `bolt pretrain` checkpoint (no model.vit in its stored config)")
    prefix = "nets.online." if branch == "online" or model_cfg.get("method") == "mae" else "nets.target."
    state = {k[len(prefix) :]: v for k, v in blob["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise UserError(f"{path}: holds no {branch} encoder weights")
    return Init(model_cfg.get("method", "pretrained"), ViTConfig(**model_cfg["vit"]), state, str(path))


def load_init(spec: str, scratch_vit: ViTConfig, branch: str = "online") -> Init:
    """``scratch`` | a run folder | ``backbone.pt`` | a pre-training ``.ckpt`` | ``imagenet:PATH``."""
    if spec == "scratch":
        return Init("scratch", scratch_vit)
    if spec.startswith("imagenet:"):
        path = Path(spec.split(":", 1)[1]).expanduser()
        if not path.is_file():
            raise UserError(f"--init {spec}: ImageNet weights {IMAGENET_SKIP}; {path} does not exist (save a timm "
                            "ViT state dict there on a machine with hub access)")  # fmt: skip
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        vit_state = {f"vit.{k}": v for k, v in state.items() if not k.startswith("head")}
        return Init("imagenet", scratch_vit, vit_state, str(path))
    path = Path(spec).expanduser()
    if path.is_dir():
        candidate = path / ("backbone.pt" if branch == "online" else "backbone_target.pt")
        if branch != "online" and not candidate.is_file():  # runs written before 0.4.0: the full checkpoint
            candidate = path / "checkpoints/last.ckpt"
        if not candidate.is_file():
            raise MissingFileError("initialisation", candidate, "--init takes a `bolt pretrain` run folder")
        path = candidate
    if not path.is_file():
        raise MissingFileError(
            "initialisation", path, "expected scratch, a run folder, backbone.pt, a .ckpt or imagenet:PATH"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=path.suffix != ".ckpt")
    except Exception as err:
        raise UserError(f"{path}: cannot be read as a checkpoint ({type(err).__name__})") from None
    if isinstance(blob, dict) and "state_dict" in blob and "paperlab" in blob:
        return _encoder_from_lightning(blob, path, branch)
    if isinstance(blob, dict) and blob.get("kind") == BACKBONE_KIND:
        if branch != "online" and blob.get("branch") != branch:
            raise ConfigError(
                f"{path} holds the {blob.get('branch')} encoder; --init-branch {branch} needs backbone_target.pt or last.ckpt"
            )
        return Init(
            str(blob.get("method", "pretrained")), ViTConfig(**blob["vit"]), blob["state_dict"], str(path)
        )
    raise UserError(f"{path}: not a bolt backbone (expected backbone.pt or a `bolt pretrain` checkpoint)")


def build_backbone(init: Init, seed: int, device: torch.device) -> TokenViT:
    """The encoder of ``init`` (scratch: timm's initialisation under ``seed``), on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TokenViT(
            init.vit, learned_mask_token=bool(init.state_dict and "mask_token" in init.state_dict)
        )
    if init.state_dict is not None:
        missing, unexpected = model.load_state_dict(init.state_dict, strict=False)
        unexpected = [k for k in unexpected if k != "mask_token"]
        if unexpected or [k for k in missing if k != "mask_token"]:
            raise UserError(
                f"{init.source}: weights do not fit the ViT (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    return model.to(device)


def check_fits(model: TokenViT, data: Dataset) -> None:
    if data.channels != model.in_chans or data.size != model.img_size:
        raise ConfigError(
            f"{data.name} has {data.channels}-channel {data.size}-px images but the ViT takes {model.in_chans} "
            f"channel(s) at {model.img_size} px (pick a matching --config/--init, or --data.as_rgb true)"
        )


# --------------------------------------------------------------------------------------------- tensors
def unit_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, C) uint8 → (N, C, H, W) float in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0


def _normaliser(mean: list[float], std: list[float], device: torch.device):
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    return lambda x: (x - m) / s


@torch.inference_mode()
def features(
    model: TokenViT, images: np.ndarray, mean: list[float], std: list[float], batch: int = 500,
    kind: str = "readout",
) -> np.ndarray:  # fmt: skip
    """Probe features (``kind``: ``models.PROBE_FEATURES``, default the readout) of un-augmented images (eval)."""
    device = next(model.parameters()).device
    norm = _normaliser(mean, std, device)
    was = model.training
    model.eval()
    out = [
        model.probe_features(norm(unit_tensor(images[i : i + batch], device)), kind).float().cpu()
        for i in range(0, len(images), batch)
    ]
    model.train(was)
    if out:
        return torch.cat(out).numpy()
    return model.probe_features(torch.zeros(1, model.in_chans, model.img_size, model.img_size, device=device),
                                kind)[:0].float().cpu().numpy()  # fmt: skip


# --------------------------------------------------------------------------------------------- linear probe
def _expand_proba(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes.astype(int)] = proba
    return full


def logistic_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    task: str,
    n_classes: int,
    cfg: ProtocolConfig,
) -> np.ndarray:
    """StandardScaler + LogisticRegression(C, lbfgs) → class probabilities of the test rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    a, b = scaler.transform(train_x), scaler.transform(test_x)
    if task == "multilabel":
        cols = []
        for j in range(train_y.shape[1]):
            if np.unique(train_y[:, j]).size < 2:
                cols.append(np.full(len(b), float(train_y[0, j])))
                continue
            clf = LogisticRegression(C=cfg.probe_c, max_iter=cfg.probe_max_iter).fit(a, train_y[:, j])
            cols.append(clf.predict_proba(b)[:, 1])
        return np.stack(cols, axis=1)
    if np.unique(train_y).size < 2:
        return _expand_proba(np.ones((len(b), 1)), np.unique(train_y), n_classes)
    clf = LogisticRegression(C=cfg.probe_c, max_iter=cfg.probe_max_iter).fit(a, train_y)
    return _expand_proba(clf.predict_proba(b), clf.classes_, n_classes)


PROBE_MODES = ("spec", "val")


def probe_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray | None,
    val_y: np.ndarray | None,
    test_xs: list[np.ndarray],
    task: str,
    n_classes: int,
    cfg: ProtocolConfig,
) -> tuple[list[np.ndarray], float]:
    """The configured probe → (class probabilities of each of ``test_xs``, the C used).

    ``cfg.probe == "spec"``: C = ``cfg.probe_c``. ``"val"`` (ours): every C of ``cfg.probe_c_grid`` is fitted on the
    labelled rows and scored on the val split by the primary metric (QWK for ordinal tasks, else accuracy; macro
    AUC for multi-label); the best C wins, ties go to the smaller (stronger regularisation). The val labels are used
    for this one choice only, identically for every initialisation.
    """
    from dataclasses import replace

    from bolt_ssl.metrics import classification_metrics

    if cfg.probe not in PROBE_MODES:
        raise ConfigError(f"probe: {cfg.probe!r} is not one of {', '.join(PROBE_MODES)}")
    c = cfg.probe_c
    if cfg.probe == "val":
        if val_x is None or val_y is None or not len(val_x):
            raise ConfigError("probe val: the dataset has no val split to choose the probe's C on")
        key = {"ordinal": "qwk", "multilabel": "auc_ovr"}.get(task, "accuracy")
        scores = []
        for cand in sorted(cfg.probe_c_grid):
            prob = logistic_probe(train_x, train_y, val_x, task, n_classes, replace(cfg, probe_c=cand))
            score = classification_metrics(val_y, prob, task, n_classes)[key]
            scores.append((-np.inf if score is None or np.isnan(score) else float(score), -cand))
        c = -max(scores)[1]
    chosen = replace(cfg, probe_c=c)
    return [logistic_probe(train_x, train_y, x, task, n_classes, chosen) for x in test_xs], float(c)


def majority_proba(train_y: np.ndarray, n_test: int, task: str, n_classes: int) -> np.ndarray:
    """Every test row gets the train label frequencies (argmax = the majority class; AUC = 0.5)."""
    if task == "multilabel":
        freq = train_y.mean(axis=0)
    else:
        freq = np.bincount(train_y, minlength=n_classes) / len(train_y)
    return np.tile(freq, (n_test, 1))


def pixel_features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


# --------------------------------------------------------------------------------------------- fine-tuning
def _cosine_warmup(step: int, total: int, warmup: float) -> float:
    warm = max(int(round(warmup * total)), 1)
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


class Classifier(nn.Module):
    """Backbone + Linear(D → C) head on its readout; takes standardised images."""

    def __init__(self, backbone: TokenViT, n_outputs: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.embed_dim, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _layer_id(name: str, depth: int) -> int:
    """0 = embeddings (patch, CLS, positions, mask token), 1..depth = blocks, depth + 1 = final norm and head."""
    if name.startswith("backbone.vit.blocks."):
        return int(name.split(".")[3]) + 1
    if name.startswith(("backbone.vit.patch_embed", "backbone.vit.cls_token", "backbone.vit.pos_embed",
                        "backbone.mask_token")):  # fmt: skip
        return 0
    return depth + 1


def param_groups(model: Classifier, cfg: ProtocolConfig) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices only; lr·d^(depth+1−layer) with d = ``cfg.layer_decay`` (1 = spec)."""
    if not 0.0 < cfg.layer_decay <= 1.0:
        raise ConfigError(f"layer decay {cfg.layer_decay}: expected 0 < d <= 1 (1 = no decay)")
    depth = len(model.backbone.vit.blocks)
    groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        groups.setdefault((_layer_id(name, depth), p.ndim >= 2), []).append(p)
    return [
        {
            "params": params,
            "weight_decay": cfg.weight_decay if decay else 0.0,
            "lr": cfg.lr * cfg.layer_decay ** (depth + 1 - layer),
        }
        for (layer, decay), params in sorted(groups.items())
    ]


def finetune(
    backbone: TokenViT, train: Split, task: str, n_classes: int, mean: list[float], std: list[float],
    cfg: ProtocolConfig, seed: int,
) -> Classifier:  # fmt: skip
    """Full fine-tuning for ``cfg.steps`` AdamW steps (no early stopping); the final weights are returned."""
    device = next(backbone.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        model = Classifier(backbone, n_classes).to(device)
    x_all = unit_tensor(train.images, device)
    y_all = torch.from_numpy(train.labels).to(device)
    norm = _normaliser(mean, std, device)
    g = torch.Generator(device=device).manual_seed(int(seed))
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine_warmup(s, cfg.steps, cfg.warmup))
    n = len(train)
    batch = min(cfg.batch, n)
    order = torch.randperm(n, generator=g, device=device)
    cursor = 0
    model.train()
    for _ in range(cfg.steps):
        if cursor + batch > n:
            order, cursor = torch.randperm(n, generator=g, device=device), 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        x = x_all[idx]
        if cfg.augment:
            x = augment.finetune_aug(x, g, cfg.flips)
        logits = model(norm(x))
        if task == "multilabel":
            loss = F.binary_cross_entropy_with_logits(logits, y_all[idx].float())
        else:
            loss = F.cross_entropy(logits, y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return model


@torch.inference_mode()
def predict_proba(model: Classifier, images: np.ndarray, task: str, mean: list[float], std: list[float],
                  batch: int = 500) -> np.ndarray:  # fmt: skip
    device = next(model.parameters()).device
    norm = _normaliser(mean, std, device)
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        logits = model(norm(unit_tensor(images[i : i + batch], device))).float()
        out.append((torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=-1)).cpu())
    return torch.cat(out).double().numpy()


def downstream_stats(data: Dataset) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of the labelled train split: the standardisation of every downstream protocol."""
    return channel_stats(data.train.images)


def finetuned_state(model: Classifier, init: Init, task: str, n_classes: int, mean: list[float], std: list[float],
                    data_cfg: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """``finetuned.pt``: plain tensors and builtins (``weights_only`` loadable)."""
    return {
        "kind": FINETUNED_KIND, "init": init.name, "vit": asdict(init.vit), "task": task, "n_classes": n_classes,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "norm_mean": mean, "norm_std": std, "data": data_cfg, **extra,
    }  # fmt: skip


def classifier_from_state(blob: dict[str, Any], device: torch.device) -> Classifier:
    vit = ViTConfig(**blob["vit"])
    model = Classifier(
        TokenViT(vit, learned_mask_token="backbone.mask_token" in blob["state_dict"]), blob["n_classes"]
    )
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
