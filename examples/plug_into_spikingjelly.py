"""Our masks and energy counter on a network built with plain SpikingJelly layers.

The network is yours: SpikingJelly's ``layer.Linear`` / ``layer.Conv2d`` and ``neuron.IFNode``,
trained with your own loop (here: surrogate gradients through time). sparse-convert adds:

* ``random_masks(net, sparsity)``: a ``weight_mask`` buffer on each synaptic layer (the
  output layer stays dense); masked weights stay exactly zero under any ``torch.optim``
  optimizer, with no change to the training loop;
* ``SynapticEventMonitor`` / ``SpikeCountMonitor``: SpikingJelly monitors that count exact
  synaptic events (nonzero input × nonzero weight) and spikes per time step;
* ``evaluate_over_time``: accuracy, MASFR, MACs, ACs and energy at every t <= T_max.

    python examples/plug_into_spikingjelly.py                       # digits, under a minute on 2 CPU cores
    python examples/plug_into_spikingjelly.py --dataset cifar10 --data-root DIR --conv --epochs 20 --device cuda
"""

from __future__ import annotations

import argparse
import math

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from sparse_convert.data import load_dataset
from sparse_convert.energy import SpikeCountMonitor, SynapticEventMonitor, evaluate_over_time
from sparse_convert.topology import density, random_masks
from sparse_convert.training import make_loader


def mlp(in_features: int, num_classes: int, hidden: int = 256) -> nn.Sequential:
    """A spiking MLP of plain SpikingJelly modules."""
    return nn.Sequential(
        layer.Flatten(),
        layer.Linear(in_features, hidden), neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.Linear(hidden, hidden), neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.Linear(hidden, num_classes),
    )


def cnn(channels: int, side: int, num_classes: int, width: int = 32) -> nn.Sequential:
    """A small spiking CNN of plain SpikingJelly modules."""
    return nn.Sequential(
        layer.Conv2d(channels, width, 3, padding=1), neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.AvgPool2d(2),
        layer.Conv2d(width, 2 * width, 3, padding=1), neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.AvgPool2d(2),
        layer.Flatten(),
        layer.Linear(2 * width * (side // 4) ** 2, num_classes),
    )


def train(net: nn.Module, data, epochs: int, steps: int, device: str) -> None:
    """Your own training loop: BPTT over ``steps`` time steps, rate-decoded output."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for epoch in range(epochs):
        net.train()
        for x, y in make_loader(data.train, 64, shuffle=True, seed=epoch):
            x, y = x.to(device), y.to(device)
            out = net(x.unsqueeze(0).repeat(steps, *[1] * x.dim())).mean(0)  # direct encoding, [T, B, ...]
            loss = nn.functional.cross_entropy(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            functional.reset_net(net)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--conv", action="store_true", help="a small CNN instead of an MLP")
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=4, help="time steps per training sample")
    parser.add_argument("--t-max", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    data = load_dataset(args.dataset, root=args.data_root)
    if args.conv and len(data.in_shape) != 3:
        parser.error(f"--conv needs images (C, H, W); {args.dataset} holds inputs of shape {data.in_shape}")
    if args.conv:
        net = cnn(data.in_shape[0], data.in_shape[1], data.num_classes)
    else:
        net = mlp(math.prod(data.in_shape), data.num_classes)
    functional.set_step_mode(net, "m")  # [T, B, ...] in, [T, B, classes] out
    net.to(args.device)

    masks = random_masks(net, args.sparsity, generator=torch.Generator().manual_seed(0))
    print(f"masked layers: {sorted(masks)}; network density {density(net).network:.3f}")
    train(net, data, args.epochs, args.train_steps, args.device)
    for name, mask in masks.items():  # the training loop never touched the masks, yet:
        weight = dict(net.named_modules())[name].weight
        assert bool((weight[~mask.to(weight.device)] == 0).all()), f"masked weights of {name} moved"

    # The monitors on one batch: exact events per synaptic layer and spikes per node, per time step.
    x, _ = next(iter(make_loader(data.test, 32, shuffle=False)))
    steps = 4
    with SynapticEventMonitor(net) as events, SpikeCountMonitor(net) as spikes, torch.no_grad():
        events.steps = spikes.steps = steps
        net(x.to(args.device).unsqueeze(0).repeat(steps, *[1] * x.dim()))
        functional.reset_net(net)
        for name, per_step in events.per_layer().items():
            print(f"layer {name}: synaptic events per step (batch of 32) {per_step.tolist()}")
        for name, per_step in spikes.per_layer().items():
            print(f"node {name}: spikes per step {per_step.tolist()}")

    # Everything at every t <= T_max: the first layer gets the analog image (MACs), the others spikes (ACs).
    curves = evaluate_over_time(net, data.test, args.t_max, device=args.device, progress=False)
    print(f"MAC/AC roles: {curves.roles}")
    for t in (1, args.t_max // 2, args.t_max):
        at = curves.at(t)
        print(f"T={t:3d}: accuracy {at['accuracy']:.4f}, MASFR {at['masfr']:.4f}, "
              f"MACs {at['mac']:.0f}, ACs {at['ac']:.0f}, energy {at['energy_uj']:.4g} uJ/image")


if __name__ == "__main__":
    main()
