"""What a finished run tells its user: did the model learn (test accuracy against chance), what to open.

A model that did not learn still has layers, Jacobians and a pulled-back metric, and its
figures look as authoritative as a good model's. riemexp says so wherever the run is shown:

    chance   = the share of the test set's most frequent class: the accuracy of a model that
               always answers that class (1/C for C balanced classes)
    learned  = (test accuracy - chance) / (1 - chance): how far the model got from chance
               towards a perfect score (1: perfect; 0: no better than chance; 0 when chance = 1)

A run is **near chance** when learned < NEAR_CHANCE (0.4): it closed less than 40 % of the gap
from chance to a perfect score. For two balanced classes that is a test accuracy below 0.70,
for three below 0.60, for five below 0.52. Such a run completes (its files are the record of
what happened), but metrics.json says `"near_chance": true` with a `warning`, the terminal
prints the warning, and every figure title carries it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riemexp.layout import REPORT_FILE

#: the fraction of the way from chance to a perfect score below which a run is near chance
NEAR_CHANCE = 0.4


def chance_accuracy(labels: Sequence[int] | np.ndarray) -> float:
    """The share of the most frequent label in `labels` (N,): a constant answer's accuracy."""
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        return float("nan")
    return float(np.bincount(labels.astype(np.int64)).max() / labels.size)


def learned_fraction(accuracy: float, chance: float) -> float:
    """(accuracy - chance) / (1 - chance); 0 where chance is 1 (a single-class test set)."""
    if chance >= 1.0:
        return 0.0
    return (accuracy - chance) / (1.0 - chance)


def near_chance_below(chance: float) -> float:
    """The test accuracy below which a run with this chance level is near chance."""
    return chance + NEAR_CHANCE * (1.0 - chance)


def assess(test_accuracy: float | None, test_labels: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """The keys metrics.json gains: chance_accuracy, near_chance and, when near chance, warning."""
    chance = chance_accuracy(test_labels)
    if test_accuracy is None or not np.isfinite(test_accuracy) or not np.isfinite(chance):
        return {"chance_accuracy": round(chance, 6) if np.isfinite(chance) else None}
    near = learned_fraction(float(test_accuracy), chance) < NEAR_CHANCE
    out: dict[str, Any] = {"chance_accuracy": round(chance, 6), "near_chance": bool(near)}
    if near:
        out["warning"] = warning(float(test_accuracy), chance)
    return out


def warning(test_accuracy: float, chance: float) -> str:
    """One line for a run near chance: what it scored, what chance is, what that means."""
    return (
        f"test accuracy {test_accuracy:.3f} is near chance ({chance:.3f}; near: below "
        f"{near_chance_below(chance):.3f}): this model did not learn the task, and its figures and "
        "tables describe a network that does not separate the classes"
    )


def title_line(metrics: Mapping[str, Any] | None) -> str:
    """The accuracy part of a figure title: 'test accuracy 0.996', with the warning when near chance.

    metrics: metrics.json's contents (or the keys `test_accuracy`, `chance_accuracy`,
    `near_chance`); None or without a test accuracy: "".
    """
    if not metrics or metrics.get("test_accuracy") is None:
        return ""
    text = f"test accuracy {float(metrics['test_accuracy']):.3f}"
    chance = metrics.get("chance_accuracy")
    if metrics.get("near_chance") and chance is not None:
        text += f" — NEAR CHANCE ({float(chance):.2f}): this model did not learn"
    return text


#: the run's main figures, in the order a first look takes them: (file stem, what it shows)
MAIN_FIGURES = (
    ("input_space", "decision regions, metric glyphs and log volume element in the input plane"),
    ("layers", "the data, grid and metric in every chosen layer"),
)


def figures_line(metrics: Mapping[str, Any], out_dir: Path | str) -> str:
    """The run's closing line naming what to open first: its main figures and report.md.

    metrics: metrics.json's contents (its `plots`: the figure files, relative to the run folder).
    """
    out_dir = Path(out_dir)
    plots = [str(p) for p in metrics.get("plots", [])]
    shown = []
    for stem, _ in MAIN_FIGURES:
        files = [p for p in plots if Path(p).stem == stem]
        if files:
            best = next((p for p in files if p.endswith(".png")), files[0])
            shown.append(str(out_dir / best))
    report = out_dir / REPORT_FILE
    if not shown:
        return f"open {report} (no figures drawn: plot.enabled=false)"
    return f"open {' and '.join(shown)} (the run on one page: {report})"
