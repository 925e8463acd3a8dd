"""Activation of DOORPING's selected neuron on the initial trigger image, over 40 fresh seeded nets (lab notebook).

An update starts only when ``81·a² ≥ 0.5`` (the official absolute stopping test at step 0, α = 10).
Run: ``uv run python packages/doorping/docs/activation_probe.py``.
"""

import numpy as np
import torch
from doorping.networks import build_network
from doorping.neurons import PrefixActivation, select_neurons
from doorping.trigger import doorping_init

#: (arch, image size, raw max, mean, std); the digits constants are rounded, MNIST's are the standard ones
NETS = [("toy", (8, 8), 16, 0.3, 0.37), ("convnet_w32", (32, 32), 255, 0.1307, 0.3081)]

if __name__ == "__main__":
    torch.set_num_threads(1)
    for arch, size, raw_max, mean, std in NETS:
        m, s = torch.tensor([mean]).view(1, 1, 1), torch.tensor([std]).view(1, 1, 1)
        acts = []
        for k in range(40):
            net = build_network(arch, 1, 10, size, seed=k).eval()
            trigger, _ = doorping_init(1, size, 2, raw_max, m, s, np.random.default_rng(k))
            read = PrefixActivation(net, -2)
            neuron = select_neurons(read.module, 1)
            with torch.no_grad():
                acts.append(float(read(trigger.view(1, 1, *size))[0, neuron]))
        a = np.array(acts)
        print(
            f"{arch}: active {(a > 0).mean():.3f}, 81a^2 >= 0.5 on {(81 * a**2 >= 0.5).mean():.3f}, max {a.max():.3f}"
        )
