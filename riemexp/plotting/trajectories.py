"""Figures of the ODE view (riemexp.ode): trajectories of data points through the layers, and convergence.

`trajectory_figure` draws, in the plane of the first two layer coordinates, each chosen data
point's layer coordinates x_0, x_1, ..., x_L (dots joined in order by dotted segments; x_0 hollow,
x_L filled) and, for residual and c2 networks, the continuous flow of the network's own ODE from the
same x_0 (solid; the reference solver's dense output) ending at x(T) (a cross). Where the layer points
leave the flow, the network is far from its ODE (the ODE gap); plain networks have no flow.
`convergence_figure` draws ode.csv: mean and max error of the k-refined network against the
sub-step h/k on log-log axes, with a slope-1 guide and the fitted order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from riemexp.geometry import layer_coordinates
from riemexp.networks import LayeredNetwork
from riemexp.plotting.style import class_colours, class_markers, new_figure, save_figure, square_view

if TYPE_CHECKING:
    from riemexp.ode import OdeReport

MAX_PER_CLASS = 15


def choose_points(y: np.ndarray, per_class: int = MAX_PER_CLASS, seed: int = 0) -> np.ndarray:
    """Indices of at most `per_class` points of each class, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        picks.append(np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False)))
    return np.concatenate(picks)


def trajectory_figure(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    title: str,
    flow: np.ndarray | None = None,
) -> Figure:
    """Trajectories through the layers in the plane of the first two coordinates.

    coords: (L+1, n, w) layer coordinates of the n chosen points; labels (n,) class indices;
    flow: (M, n, w) the continuous ODE path at M times from t = 0 to T (None: plain network).
    """
    colours, markers = class_colours(len(class_names)), class_markers(len(class_names))
    fig = new_figure(7.0, 6.4)
    ax = fig.add_subplot()
    path = flow if flow is not None else coords
    for i in range(coords.shape[1]):
        c, m = colours[labels[i]], markers[labels[i]]
        if flow is not None:
            ax.plot(flow[:, i, 0], flow[:, i, 1], "-", color=c, lw=1.0, alpha=0.6, zorder=1)
            ax.plot(flow[-1, i, 0], flow[-1, i, 1], "x", color=c, ms=6, mew=1.5, zorder=4)
        ax.plot(coords[:, i, 0], coords[:, i, 1], ":", color=c, lw=0.8, alpha=0.8, zorder=2)
        ax.plot(coords[1:-1, i, 0], coords[1:-1, i, 1], ".", color=c, ms=4, zorder=3)
        ax.plot(coords[0, i, 0], coords[0, i, 1], m, mfc="white", mec=c, ms=5, zorder=3)
        ax.plot(coords[-1, i, 0], coords[-1, i, 1], m, color=c, mec="black", ms=6.5, zorder=4)
    x0, x1, y0, y1 = square_view(np.concatenate([path, coords]).reshape(-1, coords.shape[2])[:, :2])
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("coordinate 1 (layer-0 units: standardised input)")
    ax.set_ylabel("coordinate 2")
    ax.set_title(title, fontsize=10)
    handles = [Line2D([], [], color=colours[j], lw=1.5, label=name) for j, name in enumerate(class_names)]
    handles += [
        Line2D([], [], ls=":", marker=".", color="grey", lw=0.8, label="network layers x_0 .. x_L, in order"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="grey", label="input x_0"),
        Line2D([], [], ls="", marker="o", color="grey", mec="black", label="last hidden x_L"),
    ]
    if flow is not None:
        handles += [
            Line2D([], [], ls="-", color="grey", lw=1.0, label="ODE flow from x_0 (dopri5 dense output)"),
            Line2D([], [], ls="", marker="x", color="grey", mew=1.5, label="ODE end point x(T)"),
        ]
    ax.legend(handles=handles, fontsize=8, loc="best", framealpha=0.85)
    return fig


def convergence_figure(rows: Sequence[dict], title: str) -> Figure:
    """ode.csv rows (k, substep, error_mean, error_max) on log-log axes, with a slope-1 guide."""
    substep = np.array([r["substep"] for r in rows])
    mean = np.array([r["error_mean"] for r in rows])
    worst = np.array([r["error_max"] for r in rows])
    fig = new_figure(5.6, 4.4)
    ax = fig.add_subplot()
    ax.loglog(substep, worst, "s--", color="#D55E00", label="max over points")
    ax.loglog(substep, mean, "o-", color="#0072B2", label="mean over points")
    ax.loglog(substep, mean[-1] * substep / substep[-1], ":", color="black", label="slope 1 (order 1)")
    for r in rows:
        ax.annotate(
            f"k={r['k']}",
            (r["substep"], r["error_mean"]),
            fontsize=7,
            xytext=(3, -10),
            textcoords="offset points",
        )
    ax.set_xlabel("sub-step size h / k")
    ax.set_ylabel("|x_L^(k) - x(T)| (last-layer coordinates)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def save_trajectory_figures(
    plots: Path,
    model: LayeredNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    class_names: Sequence[str],
    report: OdeReport | None,
    formats: Sequence[str],
) -> list[Path]:
    """Write plots/trajectories.* (and plots/ode_convergence.* when `report` is given).

    x (N, 2) input points, y (N,) labels; report: riemexp.ode.measure's result for all N points
    (None for plain networks).
    """
    labels = y.cpu().numpy()
    pick = choose_points(labels)
    coords = layer_coordinates(model, x).cpu().numpy()[:, pick]  # (L+1, n, w)
    kind, L = model.kind.value, model.depth
    if report is None:
        title = f"plain network, L = {L}: layer coordinates of {len(pick)} points (no ODE)"
        fig = trajectory_figure(coords, labels[pick], class_names, title)
    else:
        flow = report.solution.path.cpu().numpy()[:, pick]  # (M, n, w)
        order = "n/a" if report.order is None else f"{report.order:.2f}"
        title = (
            f"{kind} network, L = {L}, h = {model.h:g}, T = {L * model.h:g}: {len(pick)} points\n"
            f"ODE gap {report.gap:.3g} of the data spread, refinement order {order}"
        )
        fig = trajectory_figure(coords, labels[pick], class_names, title, flow=flow)
    written = save_figure(fig, plots / "trajectories", formats)
    if report is not None:
        title = f"{kind} network, every layer in k sub-steps (L = {L}, h = {model.h:g})\nfitted order {order}"
        written += save_figure(convergence_figure(report.rows, title), plots / "ode_convergence", formats)
    return written


__all__ = ["choose_points", "convergence_figure", "save_trajectory_figures", "trajectory_figure"]
