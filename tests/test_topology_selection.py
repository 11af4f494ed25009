"""Choosing links: best-k with random ties, and sampling without replacement ∝ weight."""

import itertools

import pytest
import torch

from sparse_convert.topology.selection import sample, top_k


def inclusion_probabilities(weights: list[float], k: int) -> list[float]:
    """Exact P(i drawn) when k items are drawn one by one without replacement, each ∝ weight."""
    n = len(weights)
    p = [0.0] * n
    for order in itertools.permutations(range(n), k):
        prob, left = 1.0, sum(weights)
        for i in order:
            prob *= weights[i] / left
            left -= weights[i]
        for i in order:
            p[i] += prob
    return p


def test_sample_draws_the_distribution_of_sequential_sampling_without_replacement():
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5])
    candidates = torch.ones(5, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    draws = 4000
    counts = sum(sample(weights, candidates, 2, g).to(torch.float64) for _ in range(draws))
    expected = torch.tensor(inclusion_probabilities(weights.tolist(), 2), dtype=torch.float64)
    assert torch.allclose(counts / draws, expected, atol=0.03)  # ~4 standard errors


def test_sample_takes_zero_weights_only_after_the_positive_ones_and_never_non_candidates():
    weights = torch.tensor([[0.0, 5.0, 0.0], [1.0, 0.0, 9.0]])
    candidates = torch.tensor([[True, True, True], [True, True, False]])
    g = torch.Generator().manual_seed(1)
    positives = torch.tensor([[False, True, False], [True, False, False]])
    for _ in range(20):
        assert torch.equal(sample(weights, candidates, 2, g), positives)
        chosen = sample(weights, candidates, 4, g)
        assert int(chosen.sum()) == 4 and not chosen[1, 2]
    with pytest.raises(ValueError, match="finite and >= 0"):
        sample(torch.tensor([1.0, -1.0]), torch.ones(2, dtype=torch.bool), 1, g)
    with pytest.raises(ValueError, match="cannot choose 3 of 2 candidates"):
        sample(torch.ones(2), torch.ones(2, dtype=torch.bool), 3, g)


def test_top_k_takes_the_best_and_breaks_ties_at_random_but_repeatably():
    scores = torch.tensor([5.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    candidates = torch.ones(6, dtype=torch.bool)
    picks = set()
    for seed in range(20):
        chosen = top_k(scores, candidates, 2, torch.Generator().manual_seed(seed))
        assert chosen[0] and int(chosen[1:5].sum()) == 1
        assert torch.equal(chosen, top_k(scores, candidates, 2, torch.Generator().manual_seed(seed)))
        picks.add(int(chosen[1:5].nonzero()))
    assert len(picks) > 1
