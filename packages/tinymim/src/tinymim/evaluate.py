"""Evaluation protocols: top-1 accuracy and the k-NN diagnostic of distilled students.

The k-NN protocol is what ``tinymim evaluate --ckpt <train run>/checkpoints/last.ckpt`` reports for a distilled
student (``TinyMIMDistill.test_step``): cosine k-NN over the mean patch token of the last block, the labelled
training split as the memory bank, majority vote of ``k`` neighbours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def knn_predict(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, num_classes: int
) -> torch.Tensor:
    """Majority vote of the ``k`` most cosine-similar bank rows (rows L2-normalised); ties go to the lower class."""
    sims = queries @ bank.T
    idx = sims.topk(min(k, bank.shape[0]), dim=-1).indices
    votes = F.one_hot(bank_labels[idx], num_classes).sum(dim=1)
    return votes.argmax(-1)
