"""Synthetic run results (``RunResult`` with the fields the analysis reads), for analysis tests."""

from __future__ import annotations

from sparse_convert.experiments.result import RunResult


def ramp_curve(t_max: int, rise_at: int, low: float, high: float) -> list[float]:
    """A straight rise from ``low`` at t = 1 to ``high`` at step ``rise_at`` (1-based), flat after:
    with ``high / low`` large enough, it saturates exactly at ``rise_at``."""
    return [low + (high - low) * min(t - 1, rise_at - 1) / max(rise_at - 1, 1) for t in range(1, t_max + 1)]


def make_result(**kwargs: object) -> dict:
    """The ``result.json`` document of ``make_run_result(**kwargs)``."""
    return make_run_result(**kwargs).to_dict()


def make_run_result(*, method: str = "qcfs", sparsity: float = 0.0, seed: int = 0, acc_t: int | None = 8,
                    masfr_t: int | None = 4, t_max: int = 32, acc: float = 0.9, val: float | None = 0.85,
                    ann: float = 0.92, energy_uj: float = 1.0, density: float = 1.0, topology: str | None = None,
                    model: str = "mlp", dataset: str = "digits", options: dict | None = None) -> RunResult:
    """A result whose accuracy saturates at ``acc_t`` and MASFR at ``masfr_t`` (None: keeps rising).

    ``method="aec"`` gives a window-mode result with values at windows 2, 4, 8, ... only.
    """
    ts = list(range(1, t_max + 1))
    window = method == "aec"
    if window:
        windows = [w for w in (2, 4, 8, 16, 32, 64) if w <= t_max]
        accuracy = [None] * t_max
        masfr = [None] * t_max
        energy = [None] * t_max
        for w in windows:
            accuracy[w - 1] = acc - 0.01 * abs(w - 8)
            masfr[w - 1] = 0.1 / w
            energy[w - 1] = energy_uj * w / 8
        chosen_t = 8
    else:
        accuracy = ramp_curve(t_max, acc_t, 0.1, acc) if acc_t else [acc * 1.05**t / 1.05**t_max for t in ts]
        masfr = ramp_curve(t_max, masfr_t, 0.01, 0.2) if masfr_t else [0.2 * 1.05**t / 1.05**t_max for t in ts]
        energy = [energy_uj * t / 8 for t in ts]
        chosen_t = acc_t or t_max
    topology = topology or ("static" if sparsity == 0 else "cht")
    return RunResult(
        config={"model": model, "dataset": dataset, "method": method, "sparsity": sparsity, "topology": topology,
                "seed": seed, "t_max": t_max, "method_options": options or {}, "device": "cpu"},
        time_mode="window" if window else "integrate",
        ann_accuracy=ann,
        ann_val_accuracy=ann - 0.02,
        density={"network": density},
        per_step={"t": ts, "accuracy": accuracy, "masfr": masfr, "energy_uj": energy},
        windows={"t": windows, "steps_simulated": [2 * w for w in windows], "note": "synthetic"} if window else None,
        chosen={"t": chosen_t, "rule": "best window (highest accuracy)" if window else
                ("accuracy saturation" if acc_t else "t_max (accuracy did not saturate)"),
                "accuracy": accuracy[chosen_t - 1], "energy_uj": energy[chosen_t - 1], "val_accuracy": val},
    )
