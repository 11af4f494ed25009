"""Dynamic sparse training: every ``update_interval`` steps remove links, then regrow as many.

``cht`` (Cannistraci-Hebb training, soft rule CHTs), ``set`` (magnitude removal, random
regrowth) and ``rigl`` (magnitude removal, regrowth by dense-gradient magnitude) share one
update: remove a fraction ζ of each layer's links, optionally percolate along the chain of
masked layers, then regrow in every layer exactly the links it lost, so its link count
stays constant (the shortfall, normally 0, is recorded when too few candidates exist).
Links that change start, or end, at weight 0 with their optimizer state cleared
(``replace_masks``). Details follow the Cannistraci-Hebb training code (``docs/topology.md``);
unlike it, the update runs after the optimizer step of its iteration instead of skipping it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .init import csti_mask, input_correlation, swi_masked_
from .link_prediction import link_scores
from .masks import attach_mask, get_mask, random_masks
from .percolation import percolate, percolation_chains
from .pruning import magnitude_prune
from .schedulers import TopologyScheduler, register_topology, replace_masks
from .selection import sample, top_k

#: Defaults of the CHT / RigL papers and code (``docs/topology.md`` §2).
ZETA = 0.3
END_FRACTION = 0.75
UPDATE_INTERVAL = 100
#: Weight given to zero-score candidates when too few have a positive CH score (reference code).
SCORE_FLOOR = 1e-5
_ANNEALS = ("cosine", "constant")


def _groups(layer: nn.Module) -> int:
    return layer.groups if isinstance(layer, nn.Conv2d) else 1


class DynamicSparseScheduler(TopologyScheduler):
    """Prune-and-regrow base: ``remove`` and ``regrow`` are what a rule defines.

    ``zeta`` is the fraction of each layer's links removed per update, constant or
    cosine-annealed to 0 (``anneal``) over the first ``end`` of ``total_steps``; updates
    happen every ``update_interval`` steps before that point (forever when
    ``total_steps`` is 0, which only ``anneal="constant"`` allows).
    """

    default_anneal: ClassVar[str] = "constant"
    default_percolation: ClassVar[bool] = False

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, sparsity: float, *,
                 update_interval: int = UPDATE_INTERVAL, zeta: float = ZETA, anneal: str | None = None,
                 end: float = END_FRACTION, percolation: bool | None = None, total_steps: int = 0,
                 seed: int = 0, dense_layers: tuple[str, ...] | None = None, init: str = "swi"):
        anneal = self.default_anneal if anneal is None else anneal
        if not (isinstance(update_interval, int) and update_interval >= 1):
            raise ValueError(f"update_interval must be an integer >= 1, got {update_interval!r}")
        if not 0.0 <= zeta < 1.0:
            raise ValueError(f"zeta must be in [0, 1), got {zeta}")
        if anneal not in _ANNEALS:
            raise ValueError(f"anneal must be one of {_ANNEALS}, got {anneal!r}")
        if not 0.0 < end <= 1.0:
            raise ValueError(f"end must be in (0, 1], got {end}")
        if anneal == "cosine" and total_steps <= 0:
            raise ValueError(f"anneal='cosine' needs total_steps > 0, got {total_steps}")
        self.update_interval = update_interval
        self.zeta = zeta
        self.anneal = anneal
        self.end = end
        self.percolation = self.default_percolation if percolation is None else bool(percolation)
        self.t_end = max(1, round(end * total_steps)) if total_steps > 0 else None
        super().__init__(model, optimizer, sparsity, total_steps=total_steps, seed=seed,
                         dense_layers=dense_layers, init=init)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "update_interval": self.update_interval, "zeta": self.zeta,
                "anneal": self.anneal, "end": self.end, "percolation": self.percolation}

    def update_due(self, step: int) -> bool:
        """Whether the ``step()`` that ends iteration ``step`` (1-based) updates the topology."""
        return self.sparsity > 0 and step % self.update_interval == 0 and (self.t_end is None or step < self.t_end)

    def drop_fraction(self, step: int) -> float:
        """ζ at ``step``: constant, or ``ζ/2 · (1 + cos(π · step / t_end))``."""
        if self.anneal == "constant":
            return self.zeta
        return self.zeta / 2 * (1 + math.cos(math.pi * min(step / self.t_end, 1.0)))

    def step(self) -> None:
        super().step()
        if self.update_due(self.steps_done):
            self.update()

    def remove(self, name: str, layer: nn.Module, mask: Tensor, n_keep: int) -> Tensor:
        """The ``n_keep`` links of ``mask`` that survive: by default the largest |w| (ties at random)."""
        return top_k(layer.weight.detach().abs(), mask, n_keep, self.generator)

    def regrow(self, name: str, layer: nn.Module, mask: Tensor, n: int) -> Tensor:
        """``n`` new links among the zeros of ``mask`` (bool mask of them)."""
        raise NotImplementedError

    def update_info(self) -> dict[str, Any]:
        """Extra per-update figures for the history (e.g. CHT's τ)."""
        return {}

    @torch.no_grad()
    def update(self) -> None:
        """Remove, percolate, regrow and apply, in every layer; appends a record to ``history``."""
        layers = self.layers()
        zeta = self.drop_fraction(self.steps_done)
        links = {n: int(get_mask(layer).count_nonzero()) for n, layer in layers.items()}
        kept = {n: self.remove(n, layer, get_mask(layer), links[n] - int(links[n] * zeta))
                for n, layer in layers.items()}
        alive = dict(kept)
        if self.percolation:
            for chain in percolation_chains(self.model, list(layers)):
                if len(chain) > 1:
                    alive.update(zip(chain, percolate([kept[n] for n in chain], [_groups(layers[n]) for n in chain])))
        new_masks, record = {}, {}
        for n, layer in layers.items():
            n_kept, n_alive = int(kept[n].count_nonzero()), int(alive[n].count_nonzero())
            grown = self.regrow(n, layer, alive[n], min(links[n] - n_alive, alive[n].numel() - n_alive))
            new_masks[n] = alive[n] | grown
            n_grown = int(grown.count_nonzero())
            record[n] = {"removed": links[n] - n_kept, "percolated": n_kept - n_alive, "regrown": n_grown,
                         "shortfall": links[n] - n_alive - n_grown}
        for n, changed in replace_masks(layers, new_masks, self.optimizer).items():
            record[n]["changed"] = changed
        self.history.append({"step": self.steps_done, "zeta": zeta, **self.update_info(), "layers": record})


@register_topology("set")
class SETScheduler(DynamicSparseScheduler):
    """SET (Mocanu et al., 2018): remove the smallest |w|, regrow uniformly at random; constant ζ."""

    def regrow(self, name: str, layer: nn.Module, mask: Tensor, n: int) -> Tensor:
        return sample(torch.ones_like(mask, dtype=torch.float64), ~mask, n, self.generator)


@register_topology("rigl")
class RigLScheduler(DynamicSparseScheduler):
    """RigL (Evci et al., 2020): remove the smallest |w|, regrow where the dense gradient is largest.

    The mask hooks zero the masked gradient entries before every optimizer step, so the
    dense gradient is captured earlier: a post-accumulate-grad hook on each masked weight
    copies its ``.grad`` after the backward pass of an iteration that ends with an update
    (the last backward before that ``optimizer.step()``). ζ is cosine-annealed by default.
    """

    default_anneal = "cosine"

    def initialize(self) -> None:
        super().initialize()
        self._dense_grad: dict[str, Tensor] = {}
        self._hooks = [layer.weight.register_post_accumulate_grad_hook(self._grad_capturer(name))
                       for name, layer in self.layers().items()]

    def _grad_capturer(self, name: str):
        def capture(weight: Tensor) -> None:
            if self.update_due(self.steps_done + 1) and weight.grad is not None:
                self._dense_grad[name] = weight.grad.detach().clone()
        return capture

    def regrow(self, name: str, layer: nn.Module, mask: Tensor, n: int) -> Tensor:
        grad = self._dense_grad.pop(name, None)
        if grad is None:
            raise RuntimeError(f"rigl: no dense gradient of layer {name!r} was captured before step "
                               f"{self.steps_done}; call backward() and optimizer.step() before step()")
        return top_k(grad.abs(), ~mask, n, self.generator)


#: Initial topologies of CHT: random masks, correlated inputs (CSTI), or a pretrained model's magnitudes.
INIT_TOPOLOGIES = ("random", "csti", "magnitude")


@register_topology("cht")
class CHTScheduler(DynamicSparseScheduler):
    """CHTs (Zhang et al., 2025): soft removal, percolation, CH2-L3n regrowth; ζ cosine-annealed.

    Removal keeps ``n − ⌊ζ·n⌋`` links sampled without replacement with probability ∝
    ``max(|w|, 1e-12)^τ``, τ rising linearly from ``tau_start`` to ``tau_end`` over the first
    ``end`` of training. Regrowth scores the missing links by CH2-L3n (``ch_conv_scores``
    for Conv2d) on the mask after removal and percolation, and either samples ∝ score
    (``regrow="soft"``; when fewer candidates than needed have a positive score, every
    candidate's weight becomes score + 1e-5, as in the reference) or takes the top scores
    (``regrow="topk"``, ties at random). ``init_topology="csti"`` starts Linear layers from
    the correlated-input topology of ``csti_inputs`` (``[N, ...]`` training inputs) instead
    of random masks; ``init_topology="magnitude"`` keeps each layer's largest |w| of a
    pretrained model and its weights (no SWI): the paper's ViT pipeline, magnitude pruning
    followed by CHT fine-tuning, in one scheduler. Percolation follows the model's chains
    (``percolation.percolation_chains``: the masked layers in module order, right for MLP and
    VGG, unless the model lists its chains, as a ViT does); ``percolation=False`` turns it off.
    """

    default_anneal = "cosine"
    default_percolation = True

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, sparsity: float, *,
                 regrow: str = "soft", tau_start: float = 1.0, tau_end: float = 3.0,
                 init_topology: str = "random", csti_inputs: Tensor | None = None,
                 update_interval: int = UPDATE_INTERVAL, zeta: float = ZETA, anneal: str | None = None,
                 end: float = END_FRACTION, percolation: bool | None = None, total_steps: int = 0,
                 seed: int = 0, dense_layers: tuple[str, ...] | None = None, init: str = "swi"):
        if regrow not in ("soft", "topk"):
            raise ValueError(f"regrow must be 'soft' or 'topk', got {regrow!r}")
        if not (tau_start > 0 and tau_end > 0):
            raise ValueError(f"tau_start and tau_end must be > 0, got {tau_start}, {tau_end}")
        if init_topology not in INIT_TOPOLOGIES:
            raise ValueError(f"init_topology must be one of {INIT_TOPOLOGIES}, got {init_topology!r}")
        if init_topology == "csti" and csti_inputs is None:
            raise ValueError("init_topology='csti' needs csti_inputs, a [N, ...] tensor of training inputs")
        self.regrow_mode = regrow
        self.tau_start, self.tau_end = float(tau_start), float(tau_end)
        self.init_topology = init_topology
        if init_topology == "magnitude":
            init = "keep"  # a pretrained model keeps its weights
        self._csti_inputs = csti_inputs
        super().__init__(model, optimizer, sparsity, update_interval=update_interval, zeta=zeta, anneal=anneal,
                         end=end, percolation=percolation, total_steps=total_steps, seed=seed,
                         dense_layers=dense_layers, init=init)
        self._csti_inputs = None  # used once, at initialisation

    def options(self) -> dict[str, Any]:
        return {**super().options(), "regrow": self.regrow_mode, "tau_start": self.tau_start,
                "tau_end": self.tau_end, "init_topology": self.init_topology}

    def initialize(self) -> None:
        if self.init_topology == "random":
            return super().initialize()
        if self.init_topology == "magnitude":
            magnitude_prune(self.model, self.sparsity, layers=list(self.prunable()), optimizer=self.optimizer,
                            generator=self.generator)
            return  # the pretrained weights of the kept links stay
        random_masks(self.model, self.sparsity, generator=self.generator, exclude=self.dense_layers)
        correlation = input_correlation(self._csti_inputs)
        for layer in self.layers().values():
            if isinstance(layer, nn.Linear):
                links = int(get_mask(layer).sum())
                attach_mask(layer, csti_mask(correlation, tuple(layer.weight.shape), links, self.generator))
        if self.init == "swi":
            swi_masked_(self.model, self.generator)

    def tau(self, step: int) -> float:
        """Removal temperature τ at ``step``."""
        progress = 0.0 if self.t_end is None else min(step / self.t_end, 1.0)
        return self.tau_start + (self.tau_end - self.tau_start) * progress

    def update_info(self) -> dict[str, Any]:
        return {"tau": self.tau(self.steps_done)}

    def remove(self, name: str, layer: nn.Module, mask: Tensor, n_keep: int) -> Tensor:
        magnitude = layer.weight.detach()[mask].abs().to(torch.float64).clamp_min(1e-12)
        weights = torch.zeros(mask.shape, dtype=torch.float64, device=mask.device)
        weights[mask] = magnitude ** self.tau(self.steps_done)
        return sample(weights, mask, n_keep, self.generator)

    def regrow(self, name: str, layer: nn.Module, mask: Tensor, n: int) -> Tensor:
        scores = link_scores(mask, _groups(layer))
        candidates = ~mask
        if self.regrow_mode == "topk":
            return top_k(scores, candidates, n, self.generator)
        if int((scores > 0).count_nonzero()) < n:  # scores are 0 on existing links
            scores = scores + SCORE_FLOOR
        return sample(scores, candidates, n, self.generator)
