"""Choosing ``k`` entries of a mask-shaped score tensor: best-``k`` or sampled in proportion to a weight.

Both draw their randomness from a ``torch.Generator`` only, so a run that restores the
generator's state repeats its choices bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def top_k(scores: Tensor, candidates: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Bool mask of the ``k`` candidates with the highest ``scores``; ties are broken at random.

    ``candidates`` is a bool tensor of ``scores``' shape; ``k`` larger than their number is an
    error. The candidates are shuffled before ``torch.topk``, so which of tied entries win
    depends only on the generator.
    """
    index = _candidate_index(candidates, k)
    shuffled = index[torch.randperm(len(index), generator=generator).to(index.device)]
    values = scores.reshape(-1)[shuffled].to(torch.float64)
    return _to_mask(shuffled[torch.topk(values, k, sorted=False).indices], candidates)


def sample(weights: Tensor, candidates: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Bool mask of ``k`` candidates drawn without replacement with probability ∝ ``weights`` (≥ 0).

    An exponential race: each candidate draws ``E = −log U ~ Exp(1)`` and the ``k`` smallest ``E / w``
    win, which is exactly the distribution of ``torch.multinomial(w, k, replacement=False)``
    (without its 2²⁴-category limit, and in O(n)). Zero-weight candidates are drawn only
    once the positive ones are used up.
    """
    index = _candidate_index(candidates, k)
    w = weights.reshape(-1)[index].to(torch.float64)
    if len(w) and not (float(w.min()) >= 0 and math.isfinite(float(w.max()))):
        raise ValueError("sampling weights must be finite and >= 0")
    uniform = torch.rand(len(index), dtype=torch.float64, generator=generator).to(w.device)
    race = -torch.log1p(-uniform)  # Exp(1); uniform < 1, so finite
    return _to_mask(index[torch.topk(-(race / w), k, sorted=False).indices], candidates)


def _candidate_index(candidates: Tensor, k: int) -> Tensor:
    index = candidates.reshape(-1).nonzero().squeeze(1)
    if not 0 <= k <= len(index):
        raise ValueError(f"cannot choose {k} of {len(index)} candidates")
    return index


def _to_mask(chosen: Tensor, like: Tensor) -> Tensor:
    mask = torch.zeros(like.numel(), dtype=torch.bool, device=like.device)
    mask[chosen] = True
    return mask.reshape(like.shape)
