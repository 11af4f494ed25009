"""Graph edits every conversion method shares: find and swap activations, probe shapes, fold BatchNorm,
move a layer's bias to one time step (``BiasOnce``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from spikingjelly.activation_based import base
from torch import Tensor, nn

from ..neurons.base import channel_view
from ..topology import apply_masks, get_mask, masked_layers, synaptic_layers
from .snn import TimeFold


def named_leaves(model: nn.Module, types: type | tuple[type, ...]) -> dict[str, nn.Module]:
    """Modules of ``types`` in ``model``, by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if name and isinstance(m, types)}


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where module ``name`` is; returns the old module."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = parent.get_submodule(child)
    setattr(parent, child, new)
    return old


def replace_modules(model: nn.Module, types: type | tuple[type, ...],
                    factory: Callable[[str, nn.Module], nn.Module]) -> list[str]:
    """Replace every module of ``types`` by ``factory(name, module)``; returns the names replaced."""
    names = list(named_leaves(model, types))
    for name in names:
        replace_module(model, name, factory(name, model.get_submodule(name)))
    return names


@contextmanager
def hooked_eval(model: nn.Module, hooks: list) -> Iterator[None]:
    """Run the block with ``model`` in eval mode; then remove ``hooks`` and restore its training flag."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


@torch.no_grad()
def probe_inputs(model: nn.Module, example: Tensor, names: Iterable[str],
                 reduce: Callable[[Tensor], object] = lambda x: tuple(x.shape)) -> dict[str, object]:
    """``reduce(input)`` of each named module during one forward pass of ``example``."""
    found: dict[str, object] = {}
    hooks = []
    for name in names:
        def hook(module, args, name=name):
            found[name] = reduce(args[0])
        hooks.append(model.get_submodule(name).register_forward_pre_hook(hook))
    with hooked_eval(model, hooks):
        model(example)
    missing = [n for n in names if n not in found]
    if missing:
        raise RuntimeError(f"modules {missing} were not called in the forward pass")
    return found


@torch.no_grad()
def call_order(model: nn.Module, example: Tensor, types: type | tuple[type, ...]) -> list[str]:
    """Names of the modules of ``types`` in the order one forward pass of ``example`` calls them."""
    order: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: order.append(name))
             for name, m in named_leaves(model, types).items()]
    with hooked_eval(model, hooks):
        model(example)
    return list(dict.fromkeys(order))



def maxpool_to_avgpool(model: nn.Module) -> list[str]:
    """Replace ``nn.MaxPool2d`` by ``nn.AvgPool2d`` of the same geometry (spikes cannot be max-pooled)."""
    return replace_modules(model, nn.MaxPool2d, lambda _, m: nn.AvgPool2d(
        m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the convolution before it; masks stay attached.

    Uses SpikingJelly's FX-based ``fuse_conv_bn_eval_modules`` (which returns a
    ``GraphModule``). Modules FX cannot trace through (our activations and nodes, whose
    ``forward`` has data-dependent control flow) stand aside as ``nn.Identity`` while it
    traces and are put back by name. Folding scales each output channel, so masked
    weights stay zero. Returns ``model`` itself when it has no BatchNorm.
    """
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    from spikingjelly.activation_based.functional.conv_bn_fusion import fuse_conv_bn_eval_modules

    masked = list(masked_layers(model))
    opaque = {name: m for name, m in model.named_modules()
              if name and not type(m).__module__.startswith(("torch.", "spikingjelly."))
              and not any(isinstance(c, nn.modules.batchnorm._BatchNorm) for c in m.modules())}
    outermost = [n for n in opaque if not any(n.startswith(o + ".") for o in opaque)]
    for name in outermost:
        replace_module(model, name, nn.Identity())
    try:
        fused = fuse_conv_bn_eval_modules(model.eval())
    finally:
        for name in outermost:
            replace_module(model, name, opaque[name])
    for name in outermost:
        replace_module(fused, name, opaque[name])
    left = [n for n, m in fused.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"BatchNorm layers {left} do not directly follow a convolution and cannot be folded")
    lost = [n for n in masked if get_mask(fused.get_submodule(n)) is None]
    if lost:
        raise RuntimeError(f"BatchNorm folding lost the masks of {lost}")
    apply_masks(fused)
    return fused


@torch.no_grad()
def activation_percentiles(model: nn.Module, batches: Iterable[Tensor], names: Iterable[str], q: float,
                           *, max_values: int = 1 << 20, seed: int = 0) -> dict[str, float]:
    """The ``q``-th percentile of each named module's output over ``batches`` (layer-wise statistic).

    At most ``max_values`` values per module are kept, sampled uniformly, so memory stays bounded.
    """
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    names = list(names)
    pools: dict[str, list[Tensor]] = {n: [] for n in names}
    generator = torch.Generator().manual_seed(seed)
    hooks = []
    for name in names:
        def hook(module, args, out, name=name):
            flat = out.detach().flatten().float().cpu()
            if flat.numel() > max_values:
                flat = flat[torch.randint(flat.numel(), (max_values,), generator=generator)]
            pools[name].append(flat)
        hooks.append(model.get_submodule(name).register_forward_hook(hook))
    with hooked_eval(model, hooks):
        for x in batches:
            model(x)
    result = {}
    for name, parts in pools.items():
        if not parts:
            raise RuntimeError(f"module {name} was not called")
        values = torch.cat(parts)
        if values.numel() > max_values:
            values = values[torch.randint(values.numel(), (max_values,), generator=generator)]
        result[name] = float(torch.quantile(values, q / 100.0)) if q < 100 else float(values.max())
    return result


@torch.no_grad()
def neuron_percentiles(model: nn.Module, batches: Iterable[Tensor], names: Iterable[str], q: float,
                       num_samples: int) -> dict[str, Tensor]:
    """Per-neuron ``q``-th percentile (nearest rank) of each named module's output over ``num_samples``.

    One streaming pass: each neuron keeps only its ``k = floor((1 − q/100)·n) + 1`` largest
    values, so the exact percentile comes without storing the activations (``q = 100`` is
    the maximum, SNM's neuron-wise normalisation). Returns tensors of one sample's shape.
    """
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    names = list(names)
    keep = int((1.0 - q / 100.0) * num_samples) + 1
    tops: dict[str, Tensor | None] = {n: None for n in names}
    hooks = []
    for name in names:
        def hook(module, args, out, name=name):
            values = out.detach().float()
            if tops[name] is not None:
                values = torch.cat([tops[name], values])
            tops[name] = values.topk(min(keep, values.shape[0]), dim=0).values
        hooks.append(model.get_submodule(name).register_forward_hook(hook))
    seen = 0
    with hooked_eval(model, hooks):
        for x in batches:
            model(x)
            seen += len(x)
    if seen != num_samples:
        raise ValueError(f"expected {num_samples} samples, the batches held {seen}")
    missing = [n for n, t in tops.items() if t is None]
    if missing:
        raise RuntimeError(f"modules {missing} were not called")
    return {name: top[-1] for name, top in tops.items()}  # the k-th largest: the nearest-rank percentile


class BiasOnce(base.MemoryModule):
    """Adds ``bias`` (one value per channel) to the input of one global time step only.

    Conversions that send each value once (AEC's windows, analog first-step input) move a
    synaptic layer's bias here, so that summing the layer's output over time counts the
    bias once. Multi-step: takes ``[T, B, C, ...]``; counts steps until ``reset``.
    ``channel_dim=None`` adds a ``bias`` shaped like one sample (e.g. a ViT's class token
    and position embedding, ``[N, D]``) instead of one value per channel.
    """

    def __init__(self, bias: Tensor, at_step: int = 0, channel_dim: int | None = 1):
        super().__init__()
        bias = bias.detach().clone()
        self.register_buffer("bias", bias if channel_dim is None else bias.reshape(-1))
        self.at_step = int(at_step)
        self.channel_dim = channel_dim
        self.register_memory("step", 0)
        self.step_mode = "m"

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        local = self.at_step - self.step
        self.step += x_seq.shape[0]
        if not 0 <= local < x_seq.shape[0]:
            return x_seq
        x_seq = x_seq.clone()
        bias = self.bias if self.channel_dim is None else channel_view(self.bias, x_seq.dim() - 1, self.channel_dim)
        x_seq[local] += bias.to(x_seq.dtype)
        return x_seq

    def single_step_forward(self, x: Tensor) -> Tensor:
        return self.multi_step_forward(x.unsqueeze(0))[0]

    def extra_repr(self) -> str:
        size = f"shape={tuple(self.bias.shape)}" if self.channel_dim is None else f"channels={self.bias.numel()}"
        return f"{size}, at_step={self.at_step}"


def move_bias_to_first_step(model: nn.Module, names: list[str] | None = None) -> list[str]:
    """Replace each named synaptic layer (default: all with a bias) by ``[layer without bias, BiasOnce]``.

    The bias goes along dim 1 of a convolution's output and the last dim of a Linear's
    (so a Linear on tokens ``[B, N, C]`` works as one on ``[B, C]``).
    """
    layers = synaptic_layers(model)
    names = [n for n, m in layers.items() if m.bias is not None] if names is None else names
    for name in names:
        layer = layers[name]
        once = TimeFold(BiasOnce(layer.bias, channel_dim=-1 if isinstance(layer, nn.Linear) else 1))
        layer.bias = None
        replace_module(model, name, nn.Sequential(layer, once))
    return names
