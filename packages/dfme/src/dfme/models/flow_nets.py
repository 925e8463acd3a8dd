"""Flow-based micro-expression models on onset→apex optical flow at 28×28.

Layer details are recollections of the papers (spec §2.7, **unverified**): STSTNet (Liong et al., FG 2019) and
Off-ApexNet (Gan et al., Signal Process. Image Commun. 2019).
"""

from __future__ import annotations

import torch
from torch import nn

STREAM_INPUTS = ("all", "one_each")


class STSTNet(nn.Module):
    """Shallow triple-stream network on (u, v, |ε|) maps (B, 3, 28, 28) → (B, num_classes).

    Three parallel 3×3 'same' convolutions with 3, 5 and 8 filters, ReLU, 3×3 max-pool with stride 3 ('same'
    padding: 28 → 10), concatenated (16×10×10), 2×2 average pool (→ 16×5×5 = 400 features), linear to the classes.
    ``stream_inputs="all"``: every stream sees the three maps; ``"one_each"``: stream i sees map i.
    """

    def __init__(
        self, num_classes: int = 7, stream_inputs: str = "all", filters: tuple[int, ...] = (3, 5, 8),
        dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if stream_inputs not in STREAM_INPUTS:
            raise ValueError(f"stream_inputs must be one of {STREAM_INPUTS}, got {stream_inputs!r}")
        self.stream_inputs = stream_inputs
        cin = 3 if stream_inputs == "all" else 1
        self.streams = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, f, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 3, ceil_mode=True))
            for f in filters
        )
        self.pool = nn.AvgPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.num_features = sum(filters) * 5 * 5
        self.fc = nn.Linear(self.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.stream_inputs == "all":
            maps = [stream(x) for stream in self.streams]
        else:
            maps = [stream(x[:, i : i + 1]) for i, stream in enumerate(self.streams)]
        return self.pool(torch.cat(maps, dim=1)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


class OffApexNet(nn.Module):
    """Two streams on u and v (B, 2, 28, 28) → (B, num_classes): per stream conv 5×5×6 → max-pool 2 → conv 5×5×16
    → max-pool 2 ('same' convolutions: 28 → 14 → 7), concatenated (2×16×7×7), FC 1024 → FC 1024 → classes."""

    def __init__(self, num_classes: int = 7, hidden: int = 1024, dropout: float = 0.5) -> None:
        super().__init__()

        def stream() -> nn.Module:
            return nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(2),
            )  # fmt: skip

        self.stream_u, self.stream_v = stream(), stream()
        self.num_features = hidden
        self.mlp = nn.Sequential(
            nn.Linear(2 * 16 * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
        )  # fmt: skip
        self.fc = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        u, v = self.stream_u(x[:, :1]), self.stream_v(x[:, 1:2])
        return self.mlp(torch.cat([u.flatten(1), v.flatten(1)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
