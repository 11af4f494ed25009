"""Cannistraci-Hebb link prediction: CH2-L3n scores of the missing links of a layer's bipartite graph.

A layer's mask ``M`` (``[out, in]``, 1 = link) is a bipartite graph between its output and
input neurons. CH2-L3n scores a missing link ``(i, m)`` by the length-3 paths
``i – k – j – m`` that join its ends, rewarding intermediate nodes whose links stay inside
the local community (the formula follows the Cannistraci-Hebb training code, see
``ch2_l3n_scores``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

#: A sparse multiply-add costs about this many dense (BLAS) ones on a CPU: the crossover of
#: ``ch2_l3n_scores``' two paths, measured with ``benchmarks/bench_cht.py`` (3000 x 3072 layer,
#: sparse faster below ~3 % density).
SPARSE_FLOP_COST = 64
_METHODS = ("auto", "sparse", "dense")


def ch2_l3n_scores(mask: Tensor, *, method: str = "auto") -> Tensor:
    """CH2-L3n scores ``[out, in]`` (float64) of every missing link of a ``[out, in]`` mask; 0 on links.

    With ``DD = M Mᵀ`` (inputs shared by two outputs), ``TT = Mᵀ M`` (outputs shared by two
    inputs), ``deg_out(j) = Σ_m M[j, m]`` and ``deg_in(k) = Σ_i M[i, k]``, for ``M[i, m] = 0``::

        score[i, m] = Σ_j M[j, m] · (DD[i, j] + [DD[i, j] ≠ 0]) / max(deg_out(j) − DD[i, j], 1)
                    + Σ_k M[i, k] · (TT[m, k] + [TT[m, k] ≠ 0]) / max(deg_in(k) − TT[m, k], 1)

    ``DD[i, j]`` is the number of paths ``i – k – j – m`` through ``j``, and
    ``deg_out(j) − DD[i, j]`` its links that leave them (the reference code's "external
    degree", floored at 1). ``method="sparse"`` computes it with scipy.sparse products (no
    dense ``[n, n]`` matrix), ``"dense"`` with dense matrix products on the mask's device;
    ``"auto"`` takes whichever costs fewer operations (``SPARSE_FLOP_COST``): sparse for very
    sparse layers, dense once ``DD`` and ``TT`` are dense anyway.
    """
    if mask.dim() != 2:
        raise ValueError(f"ch2_l3n_scores needs a 2-D [out, in] mask, got shape {tuple(mask.shape)}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    binary = mask != 0
    if method == "auto":
        method = "sparse" if sparse_is_cheaper(binary) else "dense"
    if method == "dense":
        return _dense_scores(binary)
    scores = torch.from_numpy(_sparse_scores(binary.cpu().numpy()))
    return scores.to(mask.device)


def ch_conv_scores(mask: Tensor, groups: int = 1, *, method: str = "auto") -> Tensor:
    """CHT-Conv scores of every missing kernel entry of a Conv2d mask ``[out, in / groups, kh, kw]``.

    Reading implemented (the CHT-Conv paper's rule was not available): the bipartite graph
    joins the out-channels to the (in-channel, kernel tap) pairs, i.e. CH2-L3n on the
    ``[out, in/groups · kh · kw]`` view, one graph per group. It respects weight sharing
    because a node is a shared kernel parameter, so a link is one kernel entry and gets one
    score, valid at every spatial position. It respects the receptive field because only
    kernel taps are candidates, and every counted path ``o – (c', t) – o' – (c, t')``
    corresponds, in the unrolled network, to a path between output neuron ``(o, p)`` and
    input neuron ``(c, p + t')`` that stays inside the receptive field of position ``p``
    (both output neurons sit at ``p``). Paths through neighbouring positions, which exist
    in the unrolled graph, are not counted. It is also the view of the only conv-aware CH
    code we found (``docs/topology.md`` §4).
    """
    if mask.dim() != 4:
        raise ValueError(f"ch_conv_scores needs a 4-D [out, in, kh, kw] mask, got shape {tuple(mask.shape)}")
    out = mask.shape[0]
    if groups < 1 or out % groups:
        raise ValueError(f"groups must divide the {out} out-channels, got {groups}")
    blocks = mask.reshape(groups, out // groups, -1)
    scores = torch.stack([ch2_l3n_scores(block, method=method) for block in blocks])
    return scores.reshape(mask.shape)


def link_scores(mask: Tensor, groups: int = 1) -> Tensor:
    """CH scores of a layer's mask: ``ch2_l3n_scores`` for Linear, ``ch_conv_scores`` for Conv2d."""
    return ch2_l3n_scores(mask) if mask.dim() == 2 else ch_conv_scores(mask, groups)


def sparse_is_cheaper(mask: Tensor) -> bool:
    """Whether ``ch2_l3n_scores``' sparse path is the cheaper for bool ``mask``.

    Compares the multiply-adds of the sparse path, weighted by ``SPARSE_FLOP_COST``, with
    those of the four dense products.
    """
    out, inp = mask.shape
    deg_out = mask.count_nonzero(1).to(torch.float64)
    deg_in = mask.count_nonzero(0).to(torch.float64)
    nnz_dd = min(float((deg_in**2).sum()), out * out)  # upper bound on DD's nonzeros
    nnz_tt = min(float((deg_out**2).sum()), inp * inp)
    links = float(deg_out.sum())
    sparse = float((deg_in**2).sum() + (deg_out**2).sum()) + nnz_dd * links / max(out, 1) + links * nnz_tt / max(inp, 1)
    dense = 2.0 * out * inp * (out + inp)
    return SPARSE_FLOP_COST * sparse < dense


def _weights(common: sp.csr_matrix, degree: np.ndarray, by_row: bool) -> sp.csr_matrix:
    """``(C + [C ≠ 0]) / max(deg − C, 1)`` on the nonzeros of a common-neighbour count matrix ``C``.

    ``deg`` is taken at each entry's column, or at its row when ``by_row`` (the transpose).
    """
    counts = common.data
    if by_row:
        index = np.repeat(np.arange(common.shape[0]), np.diff(common.indptr))
    else:
        index = common.indices
    weighted = common.copy()
    weighted.data = (counts + 1.0) / np.maximum(degree[index] - counts, 1.0)
    return weighted


def _sparse_scores(mask: np.ndarray) -> np.ndarray:
    m = sp.csr_matrix(mask, dtype=np.float64)
    mt = m.T.tocsr()
    deg_out = np.diff(m.indptr).astype(np.float64)
    deg_in = np.diff(mt.indptr).astype(np.float64)
    w_dt = _weights((m @ mt).tocsr(), deg_out, by_row=False)  # [out, out]: WDT[i, j], degree of j
    w_td_t = _weights((mt @ m).tocsr(), deg_in, by_row=True)  # [in, in]: WTD[m, k] stored as its transpose
    # score = WDT @ M + M @ WTDᵀ as one product of stacked blocks: one sparse output, built once.
    left = sp.hstack([w_dt, m], format="csr")
    right = sp.vstack([m, w_td_t], format="csr")
    scores = (left @ right).toarray()
    scores[mask] = 0.0
    return scores


def _dense_scores(mask: Tensor) -> Tensor:
    m = mask.to(torch.float64)
    dd = m @ m.T
    tt = m.T @ m
    w_dt = (dd + (dd != 0)) / (m.sum(1) - dd).clamp_min(1)  # deg_out(j) broadcasts along j
    w_td = (tt + (tt != 0)) / (m.sum(0) - tt).clamp_min(1)  # deg_in(k) broadcasts along k
    scores = w_dt @ m + m @ w_td.T
    return scores.masked_fill_(mask, 0.0)
