"""Device correctness of the random draws (the GPU path, `reproduce --quick --device cuda`, checked on CPU).

A CPU ``torch.Generator`` cannot draw a CUDA tensor; before, the module built its perturbation-noise generator
on the CPU and handed it to ``torch.rand(..., device=<cuda>)`` in the first search step.
"""

from __future__ import annotations

import sys

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


#: torch's random draws that accept ``generator=``: factories (device from ``device=``, else the default device)
#: and in-place fills (device of the tensor filled)
FACTORY_DRAWS = ("rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson")
INPLACE_DRAWS = (
    "uniform_",
    "normal_",
    "random_",
    "bernoulli_",
    "exponential_",
    "geometric_",
    "cauchy_",
    "log_normal_",
)


def _caller_module(depth: int = 2) -> str:
    return sys._getframe(depth).f_globals.get("__name__", "")


@pytest.fixture
def generator_audit(monkeypatch):
    """Record every generator the package creates (with the device it was explicitly created on, or None) and
    every random draw the package makes with a generator (the generator and the device of the drawn tensor).

    On a CPU-only machine every tensor is on the CPU, so comparing devices alone could never fail; the audit
    therefore also requires the generator to have been created with an explicit ``device=`` equal to the
    drawn tensor's. The old bug (``torch.Generator()`` handed to ``torch.rand(..., device=mask.device)``)
    fails that check on the CPU as it failed on CUDA."""
    created: list[tuple[str, object]] = []
    draws: list[tuple[str, str, object, torch.device]] = []
    real_generator = torch.Generator

    class AuditedGenerator(real_generator):
        def __new__(cls, *args, **kwargs):
            gen = super().__new__(cls, *args, **kwargs)
            gen.created_on = kwargs.get("device", args[0] if args else None)
            caller = _caller_module()
            if caller.startswith("robust_tickets"):
                created.append((caller, gen.created_on))
            return gen

        def __init__(self, *args, **kwargs):  # the state is set up by __new__
            pass

    def audited(name, func, device_of):
        def wrapper(*args, **kwargs):
            gen = kwargs.get("generator")
            caller = _caller_module()
            if gen is not None and caller.startswith("robust_tickets"):
                draws.append(
                    (caller, name, getattr(gen, "created_on", "not audited"), device_of(args, kwargs))
                )
            return func(*args, **kwargs)

        return wrapper

    def factory_device(args, kwargs):
        return torch.device(kwargs.get("device") or torch.get_default_device())

    monkeypatch.setattr(torch, "Generator", AuditedGenerator)
    for name in FACTORY_DRAWS:
        monkeypatch.setattr(torch, name, audited(name, getattr(torch, name), factory_device))
    for name in INPLACE_DRAWS:
        monkeypatch.setattr(
            torch.Tensor,
            name,
            audited(name, getattr(torch.Tensor, name), lambda args, kwargs: args[0].device),
        )
    return created, draws


def test_generator_audit_flags_a_generator_created_without_its_tensors_device(generator_audit):
    """The audit can fail: a generator created without ``device=`` and drawn for a tensor (the old bug) is
    recorded as created on None, which the training-path test rejects."""
    created, draws = generator_audit
    exec(  # runs with a robust_tickets module name, as package code would
        compile("gen = torch.Generator(); torch.rand(2, generator=gen, device='cpu')", "<bug>", "exec"),
        {"torch": torch, "__name__": "robust_tickets.fake"},
    )
    assert created == [("robust_tickets.fake", None)]
    assert draws == [("robust_tickets.fake", "rand", None, torch.device("cpu"))]


@pytest.mark.parametrize("method", ["robust", "random", "freelb", "infobert"])
def test_every_generator_of_the_training_path_is_created_on_its_tensors_device(
    fit_tiny, generator_audit, method
):
    """The three stages (``robust``: fine-tune, mask search, draw + retrain), the random ticket and the
    adversarial baselines on CPU: every generator the package creates names its device explicitly, and every
    draw the package makes with a generator fills a tensor on the generator's device."""
    created, draws = generator_audit
    module, _, _ = fit_tiny(method=method)
    assert created, "the audit saw no generator: it is not wired to the package"
    assert all(device is not None for _, device in created), created
    assert draws, "the audit saw no draw with a generator"
    names = {name for _, name, _, _ in draws}
    if method in {"robust", "freelb", "infobert"}:  # the perturbation noise delta_0 (losses.init_delta)
        assert any(caller == "robust_tickets.losses" for caller, *_ in draws), draws
    if method == "infobert":
        assert "randperm" in names and "randint" in names, names
    bad = [d for d in draws if d[2] is None or torch.device(d[2]) != d[3]]
    assert not bad, bad
    assert module.noise_generator(torch.zeros(1)).device == torch.device("cpu")
