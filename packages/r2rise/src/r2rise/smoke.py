"""GPU smoke test (``make gpu-smoke``): a few bf16-autocast steps of the Nature-CNN BC and the batched MLP ensemble.

Uses random Atari-shaped tensors only (the GPU machine has no gymnasium or ROMs).
"""

from __future__ import annotations

import time


def gpu_smoke() -> str:
    """Train a Nature CNN and a 64-model bc_mlp ensemble for a few steps on CUDA; return one summary line."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("gpu_smoke needs a CUDA device")
    return run_smoke("cuda")


def run_smoke(device_type: str = "cuda", steps: int = 20, batch: int = 32) -> str:
    """The smoke run on ``device_type`` (``cpu`` is used by the unit test)."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    from r2rise.atari import NatureCNN
    from r2rise.learners import fit_ensemble

    device = torch.device(device_type)
    torch.manual_seed(0)
    model = NatureCNN(num_actions=4).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    obs = torch.randint(0, 256, (batch, 4, 84, 84), dtype=torch.uint8, device=device)
    actions = torch.randint(0, 4, (batch,), device=device)
    start = time.perf_counter()
    losses = []
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(obs), actions)
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    _sync(device_type)
    cnn_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(1000, 4))
    labels = (frames @ np.array([0.1, 0.5, 10.0, 2.0]) > 0).astype(np.int64)
    weights = (rng.random((64, 1000)) < 0.5).astype(np.float64)
    start = time.perf_counter()
    ensemble = fit_ensemble(frames, labels, weights, 2, steps=steps, dtype=torch.float32, device=device)
    _sync(device_type)
    ens_s = time.perf_counter() - start
    accuracy = float((ensemble.logits(frames).argmax(-1).numpy() == labels).mean())
    name = torch.cuda.get_device_name(0) if device_type == "cuda" else device_type
    return (
        f"r2rise smoke on {name}: NatureCNN bf16 loss {losses[0]:.3f}→{losses[-1]:.3f} "
        f"in {cnn_s:.2f}s; bc_mlp ensemble (64 models, {steps} steps, fp32) accuracy {accuracy:.3f} in {ens_s:.2f}s"
    )


def _sync(device_type: str) -> None:
    import torch

    if device_type == "cuda":
        torch.cuda.synchronize()
