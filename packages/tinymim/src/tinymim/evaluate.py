"""Evaluation protocols: top-1 accuracy and a cheap k-NN diagnostic for distilled students."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tinymim.data import TinyMIMDataModule
from tinymim.models import ViTConfig, build_vit


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float((logits.argmax(-1) == labels).float().mean())


@torch.no_grad()
def pooled_features(model: torch.nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Mean of the patch tokens of the last block (before the final norm), L2-normalised."""
    out = []
    for start in range(0, images.shape[0], batch):
        tokens = model.blocks(
            model.norm_pre(model._pos_embed(model.patch_embed(images[start : start + batch])))
        )
        out.append(F.normalize(tokens[:, 1:].mean(dim=1), dim=-1))
    return torch.cat(out)


def knn_accuracy(
    state: dict, config: ViTConfig, dataset: str = "embedded", root: str | None = None, k: int = 20
) -> float:
    """Cosine k-NN (majority of k neighbours) accuracy of a distilled student's pooled features."""
    model = build_vit(config)
    model.load_state_dict(state, strict=False)
    model.eval()
    data = TinyMIMDataModule(dataset=dataset, root=root, mode="finetune", img_size=config.img_size)
    splits = data.load()
    norm = lambda x: data._norm(x)  # noqa: E731
    train = pooled_features(model, norm(splits.train_images))
    test = pooled_features(model, norm(splits.test_images))
    sims = test @ train.T
    idx = sims.topk(min(k, train.shape[0]), dim=-1).indices
    votes = F.one_hot(splits.train_labels[idx], splits.num_classes).sum(dim=1)
    return float((votes.argmax(-1) == splits.test_labels).float().mean())
