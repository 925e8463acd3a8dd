"""GPU smoke test (``make gpu-smoke``): a few mask-search and retraining steps on CUDA under bf16 autocast."""

from __future__ import annotations

import time


def smoke_steps(device: str, model_name: str = "tiny-bert", steps: int = 3) -> str:
    """Run ``steps`` paper-mode search steps and ``steps`` ticket retraining steps on ``device``."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as exc:  # pragma: no cover
        raise ImportError("the smoke test needs torch") from exc
    from robust_tickets.losses import draw_global, l0_penalty, pgd_objective
    from robust_tickets.models import MaskedModel, load_pretrained

    torch.manual_seed(0)
    net = MaskedModel(load_pretrained(model_name, 2), "soft").to(device)
    net.freeze_backbone()
    opt = torch.optim.AdamW([net.mask_scores], lr=0.1)
    ids = torch.randint(1000, 5000, (8, 32), device=device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (8,), device=device)
    start = time.perf_counter()
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
        for _ in range(steps):
            opt.zero_grad()
            loss = pgd_objective(net, ids, mask, labels, lambda value: value.backward(), steps=2)
            (0.5 * l0_penalty(net.mask_scores)).backward()
            opt.step()
        keep = draw_global(net.mask_scores.detach().float().cpu(), 0.3).to(device)
        net.set_mode("binary")
        net.set_ticket(keep)
        for p in net.backbone.parameters():
            p.requires_grad_(True)
        opt = torch.optim.AdamW(net.backbone.parameters(), lr=2e-5)
        for _ in range(steps):
            opt.zero_grad()
            retrain = F.cross_entropy(net(input_ids=ids, attention_mask=mask).logits.float(), labels)
            retrain.backward()
            opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    sparsity = float((net.ticket == 0).float().mean())
    return (
        f"robust_tickets smoke on {device}: search loss {loss:.3f}, retrain loss {float(retrain.detach()):.3f}, "
        f"ticket sparsity {sparsity:.3f}, {time.perf_counter() - start:.1f}s"
    )


def gpu_smoke() -> str:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("gpu_smoke needs a CUDA device")
    return smoke_steps("cuda", "tiny-bert", steps=3)
