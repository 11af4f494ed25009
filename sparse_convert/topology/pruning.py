"""Pruning a trained (or training) dense network: by weight magnitude, or structurally with DepGraph.

``magnitude_prune`` and ``structural_prune`` are plain functions (prune a pretrained model
once, then fine-tune it: the masks hold the zeros). The ``magnitude`` and ``depgraph``
schedulers call them during training: the network trains dense until ``start`` of
``total_steps``, is pruned there (one shot), or in ``rounds`` steps spread until ``end``
with the cubic schedule of Zhu & Gupta (2017), ``s_k = s · (1 − (1 − k/rounds)³)``, and
fine-tunes with fixed masks afterwards. Both keep the model's weights (no SWI).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .masks import attach_mask, current_mask, default_dense_layers, get_mask, kept_links, synaptic_layers
from .percolation import out_alive
from .schedulers import TopologyScheduler, register_topology, replace_masks
from .selection import top_k

_SCOPES = ("layer", "global")


def _prunable(model: nn.Module, layers: Iterable[str] | None) -> dict[str, nn.Module]:
    synaptic = synaptic_layers(model)
    if layers is None:
        skip = default_dense_layers(model)
        return {n: m for n, m in synaptic.items() if n not in skip}
    layers = list(layers)
    unknown = [n for n in layers if n not in synaptic]
    if unknown:
        raise KeyError(f"no nn.Linear / nn.Conv2d layer named {unknown} in {type(model).__name__}")
    return {n: synaptic[n] for n in layers}


@torch.no_grad()
def magnitude_prune(model: nn.Module, sparsity: float, *, layers: Iterable[str] | None = None,
                    scope: str = "layer", optimizer: torch.optim.Optimizer | None = None,
                    generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Mask the smallest-|w| links of ``layers`` (default: all but the output layer) at ``sparsity``.

    ``scope="layer"`` keeps ``round((1 − sparsity) · n)`` links in every layer; ``"global"``
    keeps the same total, ranked over all the layers together. Only existing links can be
    kept, so pruning again to a higher sparsity refines the masks. The optimizer state of
    pruned links is cleared; returns the new masks by layer name.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
    generator = generator or torch.Generator().manual_seed(0)
    chosen = _prunable(model, layers)
    if scope == "layer":
        masks = {}
        for n, m in chosen.items():
            current = current_mask(m)
            masks[n] = top_k(m.weight.abs(), current, min(kept_links(m, sparsity), int(current.sum())), generator)
    else:
        magnitudes = torch.cat([m.weight.abs().reshape(-1).cpu() for m in chosen.values()])
        current = torch.cat([current_mask(m).reshape(-1).cpu() for m in chosen.values()])
        keep = min(sum(kept_links(m, sparsity) for m in chosen.values()), int(current.sum()))
        flat = top_k(magnitudes, current, keep, generator)
        sizes = [m.weight.numel() for m in chosen.values()]
        masks = {n: part.reshape(m.weight.shape).to(m.weight.device)
                 for (n, m), part in zip(chosen.items(), flat.split(sizes))}
    replace_masks(chosen, masks, optimizer)
    return masks


def structural_prune(model: nn.Module, sparsity: float, example_inputs: Tensor, *,
                     ignored_layers: Sequence[str] | None = None, norm: int = 2,
                     optimizer: torch.optim.Optimizer | None = None) -> dict[str, Tensor]:
    """Prune whole channels / neurons with DepGraph (``torch-pruning``) to a network-wise ``sparsity``.

    DepGraph groups every channel with all the parameters that must go with it (the
    conv's out-channel, its BatchNorm entry, the next layer's in-channel, a flattened
    classifier's columns). Each group removes its fraction ``r`` of lowest-importance
    channels (group L``norm`` magnitude; channels already pruned go first), with ``r``
    bisected so that the links left in all synaptic layers are closest to, and at most, the
    count that layer-wise sparsity ``sparsity`` gives (the output layer counted dense), i.e.
    the network-wise sparsity of a CHT-trained network. Pruned channels are masked, not
    cut out, so the architecture and checkpoints stay unchanged; ``ignored_layers``
    (default: the output layer) keep their outputs. Returns the masks of all changed layers.
    """
    try:
        import torch_pruning as tp
    except ImportError as err:
        raise ImportError("depgraph pruning needs torch-pruning: pip install 'sparse-convert[prune]'") from err
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    synaptic = synaptic_layers(model)
    ignored = list(default_dense_layers(model) if ignored_layers is None else ignored_layers)
    target = sum(m.weight.numel() if n in ignored else kept_links(m, sparsity) for n, m in synaptic.items())
    names = {m: n for n, m in synaptic.items()}

    training = model.training
    model.eval()
    try:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs, verbose=False)
        groups = list(graph.get_all_groups(ignored_layers=[synaptic[n] for n in ignored],
                                           root_module_types=(nn.Conv2d, nn.Linear)))
        importance = tp.importance.GroupMagnitudeImportance(p=norm, normalizer=None)
        plans = []
        with torch.no_grad():
            for group in groups:
                scores = importance(group)
                if scores is None:  # nothing in the group that the importance can measure
                    continue
                scores = scores.to(torch.float64).cpu()
                root = group[0].dep.target.module
                scores[~out_alive(current_mask(root)).cpu()] = -float("inf")
                items = [(names[item.dep.target.module], graph.is_out_channel_pruning_fn(item.dep.handler),
                          torch.as_tensor(item.idxs), torch.as_tensor(item.root_idxs))
                         for item in group if item.dep.target.module in names]
                plans.append((torch.sort(scores, stable=True).indices, items))
    finally:
        model.train(training)

    def masks_at(ratio: float) -> dict[str, Tensor]:
        masks = {n: current_mask(m).clone() for n, m in synaptic.items()}
        for order, items in plans:
            pruned = torch.zeros(len(order), dtype=torch.bool)
            pruned[order[:min(int(ratio * len(order)), len(order) - 1)]] = True
            for name, is_out, idxs, root_idxs in items:
                drop = idxs[pruned[root_idxs]].to(masks[name].device)
                if is_out:
                    masks[name][drop] = False
                else:
                    masks[name][:, drop] = False
        return masks

    def links(masks: dict[str, Tensor]) -> int:
        return sum(int(m.sum()) for m in masks.values())

    best = masks_at(0.0)
    if links(best) > target:  # bisect the smallest ratio that reaches the target (or prune all but one channel)
        low, high, best = 0.0, 1.0, masks_at(1.0)
        for _ in range(30):
            mid = (low + high) / 2
            candidate = masks_at(mid)
            if links(candidate) <= target:
                high, best = mid, candidate
            else:
                low = mid
    changed = {n: m for n, m in best.items() if get_mask(synaptic[n]) is not None or not bool(m.all())}
    replace_masks(synaptic, changed, optimizer)
    return changed


class PruningScheduler(TopologyScheduler):
    """Dense training, then pruning to ``sparsity`` at ``start`` (or in ``rounds`` until ``end``), then fine-tuning.

    ``start`` and ``end`` are fractions of ``total_steps``; a round due at step 0 (``start=0``
    or ``total_steps=0``: a pretrained model) prunes at construction. All-ones masks are
    attached to the layers it may prune from the start, so a checkpoint has the same keys
    before and after pruning (and a resumed run can load either).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, sparsity: float, *,
                 start: float = 0.5, end: float = 0.75, rounds: int = 1, total_steps: int = 0, seed: int = 0,
                 dense_layers: tuple[str, ...] | None = None):
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"need 0 <= start <= end <= 1, got start={start}, end={end}")
        if not (isinstance(rounds, int) and rounds >= 1):
            raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
        self.start, self.end, self.rounds = start, end, rounds
        span = (end - start) / (rounds - 1) if rounds > 1 else 0.0
        self.schedule = {round((start + k * span) * total_steps): sparsity * (1 - (1 - (k + 1) / rounds) ** 3)
                         for k in range(rounds)}  # step -> sparsity; a later round at the same step wins
        super().__init__(model, optimizer, sparsity, total_steps=total_steps, seed=seed,
                         dense_layers=dense_layers, init="keep")

    def options(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "rounds": self.rounds}

    def initialize(self) -> None:
        for layer in self.prunable().values():
            if get_mask(layer) is None:
                attach_mask(layer, torch.ones_like(layer.weight, dtype=torch.bool))
        if 0 in self.schedule:
            self._prune_round(self.schedule[0])

    def step(self) -> None:
        super().step()
        if self.sparsity > 0 and self.steps_done in self.schedule:
            self._prune_round(self.schedule[self.steps_done])

    def prune(self, sparsity: float) -> dict[str, Tensor]:
        """Prune the model to ``sparsity``; returns the new masks."""
        raise NotImplementedError

    def _prune_round(self, sparsity: float) -> None:
        before = {n: int(current_mask(m).sum()) for n, m in synaptic_layers(self.model).items()}
        masks = self.prune(sparsity)
        layers = {n: {"links": int(m.sum()), "changed": before[n] - int(m.sum())} for n, m in masks.items()}
        self.history.append({"step": self.steps_done, "sparsity": sparsity, "layers": layers})


@register_topology("magnitude")
class MagnitudeScheduler(PruningScheduler):
    """Magnitude pruning (``magnitude_prune``), layer-wise or global (``scope``), one-shot or iterative."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, sparsity: float, *,
                 scope: str = "layer", start: float = 0.5, end: float = 0.75, rounds: int = 1,
                 total_steps: int = 0, seed: int = 0, dense_layers: tuple[str, ...] | None = None):
        if scope not in _SCOPES:
            raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
        self.scope = scope
        super().__init__(model, optimizer, sparsity, start=start, end=end, rounds=rounds,
                         total_steps=total_steps, seed=seed, dense_layers=dense_layers)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "scope": self.scope}

    def prune(self, sparsity: float) -> dict[str, Tensor]:
        return magnitude_prune(self.model, sparsity, layers=list(self.prunable()), scope=self.scope,
                               optimizer=self.optimizer, generator=self.generator)


@register_topology("depgraph")
class DepGraphScheduler(PruningScheduler):
    """Structural channel pruning with DepGraph (``structural_prune``), network-wise sparsity matched.

    Tracing needs an input: ``input_shape`` (one sample's shape, e.g. ``[3, 32, 32]``), else
    the shape of the last batch the model saw in training (so pruning at construction
    needs ``input_shape``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, sparsity: float, *,
                 input_shape: Sequence[int] | None = None, norm: int = 2, start: float = 0.5, end: float = 0.75,
                 rounds: int = 1, total_steps: int = 0, seed: int = 0,
                 dense_layers: tuple[str, ...] | None = None):
        try:
            import torch_pruning  # noqa: F401
        except ImportError as err:
            raise ImportError("topology 'depgraph' needs torch-pruning: pip install 'sparse-convert[prune]'") from err
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.norm = norm
        self._hook = model.register_forward_pre_hook(self._input_recorder())
        super().__init__(model, optimizer, sparsity, start=start, end=end, rounds=rounds,
                         total_steps=total_steps, seed=seed, dense_layers=dense_layers)

    def _input_recorder(self):
        """A forward pre-hook that records one sample's shape, then removes itself (a plain function, so
        that ``copy.deepcopy(model)`` does not copy the scheduler)."""
        def record(module: nn.Module, args: tuple) -> None:
            if self.input_shape is None and args and torch.is_tensor(args[0]):
                self.input_shape = tuple(args[0].shape[1:])
            if self.input_shape is not None:
                self._hook.remove()
        return record

    def prunable(self) -> dict[str, nn.Module]:
        """Every synaptic layer: the ``dense_layers`` keep their outputs but lose the inputs of pruned channels."""
        return synaptic_layers(self.model)

    def options(self) -> dict[str, Any]:
        shape = None if self.input_shape is None else list(self.input_shape)
        return {**super().options(), "norm": self.norm, "input_shape": shape}

    def prune(self, sparsity: float) -> dict[str, Tensor]:
        if self.input_shape is None:
            raise ValueError("depgraph needs input_shape (e.g. [3, 32, 32]) to prune before the first forward pass")
        weight = next(iter(synaptic_layers(self.model).values())).weight
        example = torch.zeros(1, *self.input_shape, device=weight.device)
        return structural_prune(self.model, sparsity, example, ignored_layers=list(self.dense_layers),
                                norm=self.norm, optimizer=self.optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "input_shape": self.input_shape}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.input_shape = state["input_shape"]
