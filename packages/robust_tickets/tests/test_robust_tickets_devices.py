"""Device correctness of the random draws (the GPU path, `reproduce --quick --device cuda`, checked on CPU).

A CPU ``torch.Generator`` cannot draw a CUDA tensor; before, the module built its perturbation-noise generator
on the CPU and handed it to ``torch.rand(..., device=<cuda>)`` in the first search step.
"""

from __future__ import annotations

import pytest
import torch


def test_noise_generator_is_created_on_the_inputs_device(monkeypatch):
    """The generator follows the device of the tensors it draws for (re-created when they move), keeps the
    seed, and on CPU draws the stream of ``torch.Generator().manual_seed(seed)``."""
    from robust_tickets.module import TicketModule

    module = TicketModule(model_name="tiny-bert", attacks=[], seed=5)
    ids = torch.ones(2, 3, dtype=torch.long)
    gen = module.noise_generator(ids)
    assert gen.device == ids.device and module.noise_generator(ids) is gen
    assert torch.equal(
        torch.rand(4, generator=gen), torch.rand(4, generator=torch.Generator().manual_seed(5))
    )

    created = []

    class RecordingGenerator:  # stands in for torch.Generator on a device this machine does not have
        def __init__(self, device="cpu"):
            self.device = torch.device(device)
            created.append(self.device)

        def manual_seed(self, seed):
            self.seed = seed
            return self

    class OnCuda:  # a tensor on the first GPU, as far as the generator's device is concerned
        device = torch.device("cuda", 0)

    monkeypatch.setattr(torch, "Generator", RecordingGenerator)
    on_gpu = module.noise_generator(OnCuda())
    assert created == [torch.device("cuda", 0)] and on_gpu.seed == 5
    assert module.noise_generator(OnCuda()) is on_gpu


@pytest.mark.parametrize("method", ["robust", "freelb", "infobert"])
def test_every_draw_of_the_training_path_uses_a_generator_on_its_tensors_device(
    fit_tiny, monkeypatch, method
):
    """The three stages (and the adversarial baselines) on CPU: every generator handed to a random draw of the
    training path lives on the device of the tensors it draws for."""
    import robust_tickets.infobert as ib
    import robust_tickets.losses as losses

    seen: list[tuple[str, torch.device, torch.device]] = []

    def checked(name, func, tensor_of):
        def wrapper(*args, **kwargs):
            gen = kwargs.get("generator")
            if gen is None:
                gen = next((a for a in args if isinstance(a, torch.Generator)), None)
            if gen is not None:
                seen.append((name, gen.device, tensor_of(*args, **kwargs).device))
            return func(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        losses, "init_delta", checked("init_delta", losses.init_delta, lambda mask, *a, **k: mask)
    )
    monkeypatch.setattr(
        ib, "information_bottleneck", checked("club", ib.information_bottleneck, lambda x, t, *a, **k: t)
    )
    monkeypatch.setattr(
        ib,
        "anchored_feature_bound",
        checked("nce", ib.anchored_feature_bound, lambda c, local, *a, **k: local),
    )
    module, _, _ = fit_tiny(method=method)
    names = {name for name, _, _ in seen}
    assert "init_delta" in names
    if method == "infobert":
        assert {"club", "nce"} <= names
    assert all(gen == tensor for _, gen, tensor in seen), seen
    assert module.noise_generator(torch.zeros(1)).device == torch.device("cpu")
