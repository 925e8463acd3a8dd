"""GPU smoke test (``make gpu-smoke``): a few relation-distillation steps on CUDA under bf16 autocast."""

from __future__ import annotations


def gpu_smoke(steps: int = 5) -> str:
    """Run ``steps`` ViT-L(random) → ViT-B relation-KD steps on CUDA with bf16 autocast; one summary line."""
    try:
        import timm  # noqa: F401
        import torch
    except ImportError as err:  # pragma: no cover - depends on the GPU machine
        raise ImportError(f"tinymim gpu_smoke needs torch and timm: {err}") from err
    if not torch.cuda.is_available():
        raise RuntimeError("tinymim gpu_smoke: CUDA is not available")
    import time

    from tinymim.bench import build_pair
    from tinymim.distill import DistillOptions, distillation_step

    torch.manual_seed(0)
    student, teacher, heads, config = build_pair("paper-b-from-l", True, "cuda")
    params = [p for p in [*student.parameters(), *heads.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95))
    images = torch.randn(32, 3, config.img_size, config.img_size, device="cuda")
    losses = []
    torch.cuda.synchronize()
    start = time.time()
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = distillation_step(student, teacher, heads, images, images, DistillOptions())["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    torch.cuda.synchronize()
    if not all(map(lambda v: v == v and abs(v) < float("inf"), losses)):
        raise FloatingPointError(f"non-finite relation loss under bf16: {losses}")
    return (
        f"tinymim gpu_smoke: {torch.cuda.get_device_name(0)} | ViT-L(k=18)->ViT-B relation KD bf16 | {steps} steps "
        f"in {time.time() - start:.2f} s | loss {losses[0]:.4f} -> {losses[-1]:.4f} | "
        f"max mem {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    )
