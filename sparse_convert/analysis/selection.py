"""Model selection over a grid search (paper Appendix B): the best configuration of each run group,
chosen by validation accuracy, never by the test set.

A *group* is (dataset, model, method, dense | sparse, topology, sparsity): a grid over several
sparsities selects at each one, as the paper reports each sparsity apart; a *configuration* is a
run's config without its seed, so the seeds of one configuration are its repeats and the
configuration's score is their mean validation accuracy.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import mean


def connectivity(result: dict) -> str:
    """``"sparse"`` when the run's config removes links, else ``"dense"``."""
    return "sparse" if result["config"]["sparsity"] > 0 else "dense"


def group_key(result: dict) -> tuple[str, str, str, str, str, float]:
    """(dataset, model, method, "dense" | "sparse", topology, sparsity) of one result."""
    cfg = result["config"]
    return cfg["dataset"], cfg["model"], cfg["method"], connectivity(result), cfg["topology"], float(cfg["sparsity"])


def configuration_key(config: dict) -> str:
    """The config's identity (``RunConfig.identity_of``) without the seed: equal for the repeats of one
    configuration."""
    from ..experiments.config import RunConfig

    return RunConfig.identity_of(config, ignore=("seed",))


def validation_accuracy(result: dict) -> float | None:
    """The SNN's validation accuracy at the chosen T, else the ANN's; ``None`` without a validation split."""
    chosen = result.get("chosen") or {}
    if chosen.get("val_accuracy") is not None:
        return float(chosen["val_accuracy"])
    if result.get("ann_val_accuracy") is not None:
        return float(result["ann_val_accuracy"])
    return None


@dataclass(frozen=True)
class Selection:
    """The best configuration of one group: its repeats, mean validation accuracy and rivals counted."""

    group: tuple[str, str, str, str, str, float]
    configuration: str
    val_accuracy: float
    runs: list[dict]
    candidates: int

    def to_dict(self) -> dict:
        dataset, model, method, kind, topology, sparsity = self.group
        return {"dataset": dataset, "model": model, "method": method, "connectivity": kind, "topology": topology,
                "sparsity": sparsity,
                "val_accuracy": self.val_accuracy, "seeds": sorted(r["config"]["seed"] for r in self.runs),
                "candidates": self.candidates, "config": json.loads(self.configuration)}


def select_best(results: Iterable[dict]) -> list[Selection]:
    """One ``Selection`` per group, sorted by group: the configuration with the highest mean validation
    accuracy over its seeds (ties: the first configuration in canonical order)."""
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if validation_accuracy(r) is None:
            raise ValueError(f"run {r['config']['model']}/{r['config']['method']} seed {r['config']['seed']} "
                             "has no validation accuracy: selection never uses the test set")
        groups[group_key(r)][configuration_key(r["config"])].append(r)
    selections = []
    for group, configs in sorted(groups.items()):
        scores = {key: mean(validation_accuracy(r) for r in runs) for key, runs in configs.items()}
        best = min(scores, key=lambda key: (-scores[key], key))
        runs = sorted(configs[best], key=lambda r: r["config"]["seed"])
        selections.append(Selection(group, best, scores[best], runs, len(configs)))
    return selections


def best_runs(results: Iterable[dict]) -> list[dict]:
    """The results of every group's best configuration (all its seeds)."""
    return [r for s in select_best(results) for r in s.runs]
