"""The networks of the official code (spec §2.9) as flat ``nn.Sequential`` stacks.

Every network is ``features → Flatten → classifier`` in one ``nn.Sequential``. That makes two things trivial that
the official code does with parameter-name parsing (which breaks under ``DataParallel`` and for nested modules):

* the module that owns a weight tensor is found by position (:func:`weighted_layers`), and
* the activation of a layer is a forward through the *prefix* of the stack (:func:`prefix_output`), with no hook.

The ReLU after a Linear layer is ``inplace=True`` as in the official code: a forward hook on the Linear layer
therefore reads the post-ReLU value (spec §2.3.2), which :func:`prefix_output` reproduces by running that ReLU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from paperlab_core.errors import ConfigError

#: names accepted by ``--model.arch`` / ``--arch``
ARCHS = ("toy", "convnet", "convnet_w32", "convnet_w64", "convnet_dc", "alexnet")


class FlatNet(nn.Sequential):
    """``features → Flatten → classifier`` as one sequential stack; ``embed_index`` is the Flatten's position."""

    def __init__(self, features: list[nn.Module], classifier: list[nn.Module], arch: str) -> None:
        super().__init__(*features, nn.Flatten(), *classifier)
        self.embed_index = len(features)
        self.arch = arch

    def __getitem__(self, idx: int | slice) -> nn.Module:
        if isinstance(idx, slice):  # a plain Sequential (nn.Sequential would call FlatNet's own constructor)
            return nn.Sequential(*list(self._modules.values())[idx])
        return super().__getitem__(idx)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features (the DM embedding, spec §2.8)."""
        return prefix_output(self, self.embed_index, x, apply_relu=False)


def _features_size(features: list[nn.Module], channels: int, im_size: tuple[int, int]) -> int:
    with torch.no_grad():
        out = nn.Sequential(*features)(torch.zeros(1, channels, *im_size))
    return int(out.numel())


def toy_convnet(channels: int, num_classes: int, im_size: tuple[int, int]) -> FlatNet:
    """Toy ConvNet for 8×8 digits (spec §2.9, proposed): 2 × [Conv3×3(32) → ReLU → AvgPool2] → 128 → 64 → C."""
    features: list[nn.Module] = []
    width = 32
    in_ch = channels
    for _ in range(2):
        features += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
        in_ch = width
    num_feat = _features_size(features, channels, im_size)
    classifier = [nn.Linear(num_feat, 64), nn.ReLU(inplace=True), nn.Linear(64, num_classes)]
    return FlatNet(features, classifier, "toy")


def convnet(
    channels: int,
    num_classes: int,
    im_size: tuple[int, int],
    width: int = 128,
    depth: int = 3,
    norm: bool = False,
) -> FlatNet:
    """The official ConvNet: depth × [Conv3×3(width) → (norm) → ReLU → AvgPool2].

    ``norm=False`` with a 2-layer head ``Linear(F→192) → ReLU → Linear(192→C)`` is baadd's ConvNet (no
    normalisation); ``norm=True`` is the original DC ConvNet (instance norm as ``GroupNorm(C, C)``, one Linear).
    The first convolution pads by 3 for one-channel input, as in the official code.
    """
    features: list[nn.Module] = []
    in_ch = channels
    for d in range(depth):
        pad = 3 if channels == 1 and d == 0 else 1
        features.append(nn.Conv2d(in_ch, width, 3, padding=pad))
        if norm:
            features.append(nn.GroupNorm(width, width, affine=True))
        features += [nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
        in_ch = width
    num_feat = _features_size(features, channels, im_size)
    if norm:
        return FlatNet(features, [nn.Linear(num_feat, num_classes)], "convnet_dc")
    classifier = [nn.Linear(num_feat, 192), nn.ReLU(inplace=True), nn.Linear(192, num_classes)]
    return FlatNet(features, classifier, "convnet" if width == 128 else f"convnet_w{width}")


def alexnet(channels: int, num_classes: int, im_size: tuple[int, int]) -> FlatNet:
    """The official CIFAR AlexNet ("AlexCifarNet"): two Conv5×5(64) blocks with LRN, 4096 → 384 → 192 → C."""
    lrn = {"size": 4, "alpha": 0.001 / 9.0, "beta": 0.75, "k": 1.0}
    features: list[nn.Module] = [
        nn.Conv2d(channels, 64, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, padding=1),
        nn.LocalResponseNorm(**lrn),
        nn.Conv2d(64, 64, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.LocalResponseNorm(**lrn),
        nn.MaxPool2d(3, 2, padding=1),
    ]
    num_feat = _features_size(features, channels, im_size)
    classifier = [
        nn.Linear(num_feat, 384),
        nn.ReLU(inplace=True),
        nn.Linear(384, 192),
        nn.ReLU(inplace=True),
        nn.Linear(192, num_classes),
    ]
    return FlatNet(features, classifier, "alexnet")


BUILDERS: dict[str, Callable[[int, int, tuple[int, int]], FlatNet]] = {
    "toy": toy_convnet,
    "convnet": convnet,
    "convnet_w32": lambda c, n, s: convnet(c, n, s, width=32),
    "convnet_w64": lambda c, n, s: convnet(c, n, s, width=64),
    "convnet_dc": lambda c, n, s: convnet(c, n, s, norm=True),
    "alexnet": alexnet,
}


def build_network(
    arch: str, channels: int, num_classes: int, im_size: tuple[int, int], seed: int | None = None
) -> FlatNet:
    """A freshly initialised network, seeded (``seed``) without touching the global RNG state.

    The official ``get_network`` reseeds torch from the wall clock on every call; here every net is seeded from
    the run seed and its purpose (spec §2.6), so runs repeat exactly. Built on the CPU; move it with ``.to``.
    """
    if arch not in BUILDERS:
        raise ConfigError(f"unknown architecture {arch!r} (expected one of {', '.join(ARCHS)})")
    if seed is None:
        return BUILDERS[arch](channels, num_classes, tuple(im_size))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BUILDERS[arch](channels, num_classes, tuple(im_size))


# --------------------------------------------------------------------------------------------- layer access
def weighted_layers(net: nn.Sequential) -> list[int]:
    """Positions (in the stack) of the modules that own a weight tensor, in forward order.

    This is the official code's list of ``*.weight`` parameters, resolved to module positions once. Norm layers
    own a 1-D weight and are listed too, as in the official code.
    """
    return [i for i, m in enumerate(net) if isinstance(getattr(m, "weight", None), torch.Tensor)]


def resolve_layer(net: nn.Sequential, layer: int) -> int:
    """Stack position of the ``layer``-th weight tensor (official indexing, e.g. −2 = the penultimate Linear).

    DOORPING reads neurons of a Linear layer; anything else is a configuration error.
    """
    positions = weighted_layers(net)
    if layer >= 0 or -layer > len(positions):
        raise ConfigError(
            f"trigger.layer {layer} is out of range: the network has {len(positions)} weight tensors "
            f"(expected -1 … -{len(positions)})"
        )
    index = positions[layer]
    if not isinstance(net[index], nn.Linear):
        raise ConfigError(
            f"trigger.layer {layer} resolves to a {type(net[index]).__name__} in {getattr(net, 'arch', 'the net')}; "
            "DOORPING reads the neurons of a Linear layer (try trigger.layer -1)"
        )
    return index


def prefix_output(net: nn.Sequential, index: int, x: torch.Tensor, apply_relu: bool = True) -> torch.Tensor:
    """Output of stack module ``index`` for input ``x``: a forward through ``net[:index + 1]`` only.

    With ``apply_relu`` and a ReLU right after it, the ReLU is applied: that is what a forward hook on the module
    reads in the official code, where the next module is an in-place ReLU (spec §2.3.2).
    """
    out = x
    for module in list(net)[: index + 1]:
        out = module(out)
    if apply_relu and index + 1 < len(net) and isinstance(net[index + 1], nn.ReLU):
        out = torch.relu(out)
    return out


def last_conv_index(net: nn.Sequential) -> int:
    """Position of the last convolution (the layer fine-pruning prunes)."""
    convs = [i for i, m in enumerate(net) if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError(f"{getattr(net, 'arch', 'the net')} has no convolution to prune")
    return convs[-1]
