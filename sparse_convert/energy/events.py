"""Exact synaptic events: one nonzero input reaching one nonzero weight.

For a layer ``f(x; W)`` that is linear in ``x`` (Linear, Conv1d / Conv2d / Conv3d with any
stride, padding, padding mode, dilation and groups, and SpikingJelly's ``layer.*`` versions),
the number of nonzero weights that input position ``i`` reaches is
``fanout[i] = ∂/∂x_i Σ f(x; W≠0)``, independent of ``x``: a column count of ``W ≠ 0`` for
Linear, one float64 backward pass through the convolution otherwise, once per layer and
input shape. ``W`` is the weight the layer computes with (``effective_weight``: the
standardised weight of SpikingJelly's ``WSLinear`` / ``WSConv2d``). The events of any input
are then ``Σ_i [x_i ≠ 0] · fanout[i]``: a matrix-vector product, no second pass through the
layer. Signed and scaled spikes
count by ``x ≠ 0``. A product of two activations counts the pairs of nonzero entries that
meet (``product_pairs``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Largest integer total that float32 accumulates exactly.
_FLOAT32_EXACT = 2**24


#: Layers whose events are counted, with the number of trailing input dims that make one sample.
COUNTED_TYPES: dict[type[nn.Module], int] = {nn.Linear: 1, nn.Conv1d: 2, nn.Conv2d: 3, nn.Conv3d: 4}


def effective_weight(layer: nn.Module) -> Tensor:
    """The weight ``layer`` computes with: ``get_weight()`` where the layer has one (weight standardisation)."""
    get = getattr(layer, "get_weight", None)
    return get() if callable(get) else layer.weight


def is_counted(layer: nn.Module) -> bool:
    """Whether ``layer`` has an event rule here."""
    return isinstance(layer, tuple(COUNTED_TYPES))


def layer_fanout(layer: nn.Module, in_shape: tuple[int, ...], nonzero: Tensor | None = None) -> Tensor:
    """Nonzero weights reached by each input position of one sample, float64 of shape ``in_shape``.

    ``in_shape`` excludes the batch dimension: ``(in_features,)`` for Linear, ``(C, L)``,
    ``(C, H, W)`` or ``(C, D, H, W)`` for Conv1d / Conv2d / Conv3d. ``nonzero`` replaces the
    weight's nonzero pattern (all ones: every weight, zeros included).
    """
    if nonzero is None:
        nonzero = effective_weight(layer).detach() != 0
    if isinstance(layer, nn.Linear):  # column j reaches its nonzero rows
        return nonzero.sum(0, dtype=torch.float64).reshape(in_shape)
    if not is_counted(layer):
        raise TypeError(f"no event rule for {type(layer).__name__}")
    weight = nonzero.to(torch.float64)
    x = torch.ones((1, *in_shape), dtype=torch.float64, device=weight.device, requires_grad=True)
    with torch.enable_grad():
        out = layer._conv_forward(x, weight, None)
        (grad,) = torch.autograd.grad(out.sum(), x)
    return grad[0]


def counting_vector(fanout: Tensor) -> Tensor:
    """``fanout`` flattened, in float32 when every per-sample total is exact in float32, else float64."""
    flat = fanout.reshape(-1)
    return flat.float() if float(flat.sum()) < _FLOAT32_EXACT else flat.double()


def count_events(x: Tensor, fanout: Tensor, steps: int, workspace: dict | None = None) -> Tensor:
    """Events per time step, float64 ``[steps]``, for inputs ``x`` whose leading dims hold ``steps`` × batch.

    ``x`` is ``[steps·B, *in_shape]`` or ``[steps, B, *in_shape]``; ``fanout`` is a
    ``counting_vector`` (or any fan-out tensor of ``in_shape``). A ``workspace`` dict keeps
    the input-sized temporaries between calls, so that repeated counting allocates nothing
    large (fresh multi-megabyte temporaries at every step fragment the C allocator's heap).
    """
    if fanout.dim() != 1 or fanout.dtype not in (torch.float32, torch.float64):
        fanout = counting_vector(fanout)
    if x.numel() % (steps * fanout.numel()):
        raise ValueError(f"input of shape {tuple(x.shape)} does not hold {steps} steps of "
                         f"{fanout.numel()} inputs per sample")
    fanout = fanout.to(x.device)
    rows_shape = (x.numel() // fanout.numel(), fanout.numel())
    if workspace is None:
        rows = x.reshape(rows_shape).ne(0).to(fanout.dtype)
        per_row = rows @ fanout
    else:
        rows = _buffer(workspace, "rows", rows_shape, fanout.dtype, x.device)
        per_row = _buffer(workspace, "per_row", rows_shape[:1], fanout.dtype, x.device)
        torch.ne(x.reshape(rows_shape), 0, out=rows)
        torch.mv(rows, fanout, out=per_row)
    # one sample at one step per row: every partial sum is an exact integer in fanout.dtype
    return per_row.view(steps, -1).sum(1, dtype=torch.float64)


def product_pairs(a: Tensor, b: Tensor) -> Tensor:
    """Pairs of nonzero entries that meet in ``a @ b``, per time step, float64 ``[T]``.

    ``a`` is ``[T, ..., n, k]`` and ``b`` ``[T, ..., k, m]`` (leading dims broadcast as in
    ``torch.matmul``): ``Σ_k nnz(a[..., :, k]) · nnz(b[..., k, :])`` summed over the
    leading dims, two reductions and no product of masks.
    """
    if a.dim() < 3 or b.dim() < 3 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"cannot count the products of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    # counts along one dim fit int32, whose sums are ~3x faster than int64's on a CPU
    per_k = (a != 0).sum(-2, dtype=torch.int32).to(torch.int64) * (b != 0).sum(-1, dtype=torch.int32)
    return per_k.reshape(per_k.shape[0], -1).sum(1).to(torch.float64)


def _buffer(workspace: dict, name: str, shape: tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A tensor of ``shape`` from ``workspace``, reallocated only when shape, dtype or device change."""
    buf = workspace.get(name)
    if buf is None or buf.shape != torch.Size(shape) or buf.dtype != dtype or buf.device != device:
        buf = workspace[name] = torch.empty(shape, dtype=dtype, device=device)
    return buf


class FanoutCache:
    """Counting vectors per (layer, input shape), recomputed when the layer's weights change."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[tuple, Tensor]] = {}

    def get(self, layer: nn.Module, in_shape: tuple[int, ...]) -> Tensor:
        w = layer.weight  # an effective weight (standardisation) is a function of it
        gain = getattr(layer, "gain", None)
        key = (in_shape, w.data_ptr(), w._version, w.device,
               None if not isinstance(gain, Tensor) else (gain.data_ptr(), gain._version))
        hit = self._cache.get(id(layer))
        if hit is None or hit[0] != key:
            hit = (key, counting_vector(layer_fanout(layer, in_shape)))
            self._cache[id(layer)] = hit
        return hit[1]


def input_shape(layer: nn.Module, x: Tensor) -> tuple[int, ...]:
    """Shape of one sample's input to ``layer`` (the trailing dims of ``x``)."""
    for kind, dims in COUNTED_TYPES.items():
        if isinstance(layer, kind):
            return tuple(x.shape[-dims:])
    raise TypeError(f"no event rule for {type(layer).__name__}")
