"""Training curves: train and test loss and accuracy per epoch, read from history.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from riemexp.errors import RunFolderError
from riemexp.plotting.style import OKABE_ITO, WARNING_COLOUR, new_figure

COLUMNS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")


def read_history(path: Path) -> dict[str, np.ndarray]:
    """The columns of a history.csv as float arrays (E,); RunFolderError if missing or corrupt."""
    if not path.is_file():
        raise RunFolderError(f"{path} is missing (the training history of the run)")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        missing = [c for c in COLUMNS if rows and c not in rows[0]]
        if missing or not rows:
            what = f"columns {', '.join(missing)} missing" if missing else "no rows"
            raise RunFolderError(f"{path} is corrupt: {what} (expected columns {', '.join(COLUMNS)})")
        return {c: np.array([float(r[c]) if r[c] != "" else math.nan for r in rows]) for c in COLUMNS}
    except (ValueError, UnicodeDecodeError, csv.Error) as err:
        raise RunFolderError(f"{path} is corrupt: {err}") from None


def training_curves_figure(history: dict[str, np.ndarray], title: str, warning: str = "") -> Figure:
    """Two panels: cross-entropy loss (log scale) and accuracy, train and test, against epoch.

    warning: a line added to the title, in the warning colour (a model near chance).
    """
    fig = new_figure(9.0, 3.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epoch = history["epoch"]
    styles = {
        "train": dict(color=OKABE_ITO[0], linestyle="-"),
        "test": dict(color=OKABE_ITO[1], linestyle="--"),
    }
    for split, style in styles.items():
        ax_loss.plot(epoch, history[f"{split}_loss"], label=split, linewidth=1.5, **style)
        ax_acc.plot(epoch, history[f"{split}_accuracy"], label=split, linewidth=1.5, **style)
    losses = np.concatenate([history["train_loss"], history["test_loss"]])
    if np.all(losses[np.isfinite(losses)] > 0):
        ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(-0.02, 1.02)
    for ax, where in ((ax_loss, "upper right"), (ax_acc, "lower right")):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, loc=where)
    last = {k: v[-1] for k, v in history.items()}
    fig.suptitle(
        f"{title}\nfinal: train loss {last['train_loss']:.3g}, acc {last['train_accuracy']:.3f} · "
        f"test loss {last['test_loss']:.3g}, acc {last['test_accuracy']:.3f}"
        + (f"\n{warning}" if warning else ""),
        fontsize=10,
        color=WARNING_COLOUR if warning else "black",
    )
    return fig
