"""Table 1's energy under every named energy model: the same operation counts, priced by each preset.

Each sparse group is paired with the dense group of the same (dataset, model, method), as in
Table 1; a group's MACs and ACs per image are the means over its runs at their chosen T. A
preset that prices MACs and ACs alike gives the same reduction as counting operations: only the
absolute µJ differ. Presets also differ from the 45 nm ones in what they price (see each
preset's ``prices``: on a neuromorphic chip the analog first layer is priced off-chip).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from statistics import mean

from ..energy import ENERGY_MODELS, reduction_by_model
from .selection import group_key
from .tables import Row


def table_1_by_energy_model(results: Iterable[dict], names: list[str] | None = None) -> list[Row]:
    """One row per (sparse group, preset): dense and sparse µJ per image and the reduction in %."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[group_key(r)].append(r)

    def counts(runs: list[dict]) -> tuple[float, float]:
        return mean(r["chosen"]["mac"] for r in runs), mean(r["chosen"]["ac"] for r in runs)

    dense = {(d, m, meth): runs for (d, m, meth, kind, _, _), runs in groups.items() if kind == "dense"}
    rows = []
    for (dataset, model, method, kind, topology, sparsity), runs in sorted(groups.items()):
        partner = dense.get((dataset, model, method))
        if kind != "sparse" or partner is None or not all("mac" in r["chosen"] and "ac" in r["chosen"]
                                                           for r in runs + partner):
            continue  # no dense twin, or results that do not record their operation counts
        for name, entry in reduction_by_model(counts(partner), counts(runs), names or list(ENERGY_MODELS)).items():
            rows.append({"dataset": dataset, "model": model, "method": method, "topology": topology,
                         "sparsity": sparsity, "energy_model": name, "dense_uj": entry["reference_uj"],
                         "sparse_uj": entry["energy_uj"], "energy_reduction_pct": 100.0 * entry["reduction"]})
    return rows
