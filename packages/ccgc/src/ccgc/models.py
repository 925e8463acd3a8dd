"""The "parameter un-shared Siamese encoders" of CCGC (spec §2.3): two independent affine layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SiameseLinearEncoder(nn.Module):
    """Z1 = rownorm₂(X̃W₁ + b₁), Z2 = rownorm₂(X̃W₂ + b₂): no activation, no hidden layer, no weight sharing.

    ``noise_std > 0`` adds Gaussian noise to the normalised second view in training mode (the SCGC baseline).
    """

    def __init__(self, in_features: int, dims: int = 500, noise_std: float = 0.0) -> None:
        super().__init__()
        self.view1 = nn.Linear(in_features, dims)
        self.view2 = nn.Linear(in_features, dims)
        self.noise_std = noise_std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z1 = F.normalize(self.view1(x), dim=1)
        z2 = F.normalize(self.view2(x), dim=1)
        if self.training and self.noise_std > 0:
            z2 = z2 + torch.randn_like(z2) * self.noise_std
        return z1, z2

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Fused embedding E = (Z1 + Z2)/2 in eval mode (not re-normalised; spec §2.4)."""
        was_training = self.training
        self.eval()
        z1, z2 = self(x)
        self.train(was_training)
        return (z1 + z2) / 2
