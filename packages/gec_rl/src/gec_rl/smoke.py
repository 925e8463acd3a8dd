"""GPU smoke check: a few OPS-linear-LMC episodes on CUDA with bf16 autocast (``make gpu-smoke``).

Uses the custom RiverSwim env only (the GPU machine has no gymnasium).
"""

from __future__ import annotations

import time


def gpu_smoke() -> str:
    """Run 5 LMC episodes on CUDA (float64 sampler) plus one bf16-autocast Q evaluation; return one summary line."""
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("gpu_smoke needs a CUDA device")
    from gec_rl.agents.linear import OPSLinearLMC
    from gec_rl.envs import riverswim
    from gec_rl.regret import run_agent, task_for

    mdp = riverswim(6, horizon=20)
    agent = OPSLinearLMC(task_for(mdp, 20, 5), np.random.default_rng(0), device="cuda", steps=10)
    start = time.perf_counter()
    result = run_agent(mdp, agent, 5, 20, seed=0)
    torch.cuda.synchronize()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        q_bf16 = agent.phi.float() @ agent.theta[0].float()
    return (
        f"gec_rl gpu_smoke: device={torch.cuda.get_device_name()} episodes=5 cum_regret={result.inst_regret.sum():.3f}"
        f" bf16_q_dtype={q_bf16.dtype} finite={bool(torch.isfinite(q_bf16).all())} "
        f"time={time.perf_counter() - start:.2f}s"
    )
