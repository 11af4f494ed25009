"""CH2-L3n and CHT-Conv scores against a float64 reference that walks every length-3 path."""

from collections import Counter

import numpy as np
import pytest
import torch

from sparse_convert.topology import ch2_l3n_scores, ch_conv_scores


def path_scores(mask: np.ndarray) -> np.ndarray:
    """CH2-L3n by enumeration: for each missing link (i, m), walk the paths i – k – j – m one by one.

    ``c_j`` paths pass through out-node j and ``c_k`` through in-node k; each intermediate node
    adds (c + 1) / max(deg − c, 1), its degree counted in the mask.
    """
    out, inp = mask.shape
    deg_out = [int(sum(mask[j, :])) for j in range(out)]
    deg_in = [int(sum(mask[:, k])) for k in range(inp)]
    scores = np.zeros((out, inp), dtype=np.float64)
    for i in range(out):
        for m in range(inp):
            if mask[i, m]:
                continue
            through_j, through_k = Counter(), Counter()
            for k in range(inp):
                for j in range(out):
                    if mask[i, k] and mask[j, k] and mask[j, m]:
                        through_j[j] += 1
                        through_k[k] += 1
            scores[i, m] = (sum((c + 1) / max(deg_out[j] - c, 1) for j, c in through_j.items())
                            + sum((c + 1) / max(deg_in[k] - c, 1) for k, c in through_k.items()))
    return scores


def random_masks(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        out, inp = rng.integers(1, 13, size=2)
        mask = rng.random((out, inp)) < rng.uniform(0.05, 0.7)
        if out > 2:
            mask[rng.integers(out)] = False  # an empty row
        if inp > 2:
            mask[:, rng.integers(inp)] = False  # an empty column
        yield mask


@pytest.mark.parametrize("method", ["sparse", "dense", "auto"])
def test_ch2_l3n_equals_path_enumeration_on_random_masks(method):
    for mask in random_masks(60):
        got = ch2_l3n_scores(torch.from_numpy(mask), method=method)
        assert got.dtype == torch.float64 and got.shape == mask.shape
        np.testing.assert_allclose(got.numpy(), path_scores(mask), rtol=1e-12, atol=1e-12)


def test_ch2_l3n_scores_only_missing_links():
    mask = torch.rand(20, 25, generator=torch.Generator().manual_seed(1)) < 0.3
    scores = ch2_l3n_scores(mask)
    assert (scores[mask] == 0).all()
    assert (scores[~mask] > 0).any()


def test_ch2_l3n_of_a_hand_checked_path():
    # out 0 – in 0 – out 1 – in 1: the only length-3 path to the missing link (0, 1).
    # Through out 1: c = 1, deg 2 → 2/1; through in 0: c = 1, deg 2 → 2/1. Score 4.
    mask = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    assert ch2_l3n_scores(mask).tolist() == [[0.0, 4.0], [0.0, 0.0]]


def test_ch2_l3n_rejects_bad_input():
    with pytest.raises(ValueError, match=r"2-D \[out, in\] mask, got shape \(2, 2, 2\)"):
        ch2_l3n_scores(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="method must be one of"):
        ch2_l3n_scores(torch.ones(2, 2), method="fast")


def test_conv_scores_are_ch2_l3n_on_the_out_by_in_taps_graph():
    mask = torch.rand(6, 4, 3, 3, generator=torch.Generator().manual_seed(2)) < 0.3
    expected = path_scores(mask.reshape(6, -1).numpy()).reshape(6, 4, 3, 3)
    np.testing.assert_allclose(ch_conv_scores(mask).numpy(), expected, rtol=1e-12)


def test_grouped_conv_scores_stay_inside_each_group():
    mask = torch.rand(8, 3, 2, 2, generator=torch.Generator().manual_seed(3)) < 0.4
    scores = ch_conv_scores(mask, groups=2)
    for g in range(2):
        block = mask[4 * g:4 * (g + 1)].reshape(4, -1).numpy()
        np.testing.assert_allclose(scores[4 * g:4 * (g + 1)].reshape(4, -1).numpy(), path_scores(block), rtol=1e-12)
    with pytest.raises(ValueError, match="groups must divide the 8 out-channels, got 3"):
        ch_conv_scores(mask, groups=3)
