"""Figures of the ODE view (riemexp.ode): trajectories through the layers, convergence, the depth limit.

`trajectory_figure` draws, in the plane of the first two layer coordinates, each chosen data
point's layer coordinates x_0, x_1, ..., x_L (dots joined in order by dotted segments; x_0 hollow,
x_L filled) and, for kinds with an ODE (residual, c2), the continuous flow of the network's own ODE
from the same x_0 (solid; the reference solver's dense output, saved in ode.npz) ending at x(T) (a
cross). Where the layer points leave the flow, the network is far from its ODE (the ODE gap); plain
networks have no flow.
`convergence_figure` draws ode.csv: mean and max error of the k-refined network against the
sub-step h/k on log-log axes, with a slope-1 guide and the fitted order. `depth_limit_figure` and
`log_volume_panels` draw the ode_limit sweep's table and input log-volume heatmaps (riemexp.sweep.ode_limit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from riemexp.plotting.style import (
    SINGULAR_COLOUR,
    WARNING_COLOUR,
    class_colours,
    class_markers,
    log_volume_scale,
    new_figure,
    square_view,
)


def trajectory_figure(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    title: str,
    flow: np.ndarray | None = None,
    warning: bool = False,
) -> Figure:
    """Trajectories through the layers in the plane of the first two coordinates.

    coords: (L+1, n, w) layer coordinates of the n chosen points; labels (n,) class indices;
    flow: (M, n, w) the continuous ODE path at M times from t = 0 to T (None: plain network).
    warning: the title in the warning colour (a model near chance).
    """
    colours, markers = class_colours(len(class_names)), class_markers(len(class_names))
    fig = new_figure(7.0, 6.4)
    ax = fig.add_subplot()
    path = flow if flow is not None else coords
    depth = coords.shape[0] - 1
    dot = 4.0 if depth <= 20 else 2.5  # intermediate layers: smaller dots for deep networks
    for i in range(coords.shape[1]):
        c, m = colours[labels[i]], markers[labels[i]]
        if flow is not None:
            ax.plot(flow[:, i, 0], flow[:, i, 1], "-", color=c, lw=1.0, alpha=0.6, zorder=1)
            ax.plot(flow[-1, i, 0], flow[-1, i, 1], "x", color=c, ms=6, mew=1.5, zorder=4)
        ax.plot(coords[:, i, 0], coords[:, i, 1], ":", color=c, lw=0.8, alpha=0.8, zorder=2)
        ax.plot(coords[1:-1, i, 0], coords[1:-1, i, 1], ".", color=c, ms=dot, zorder=3)
        ax.plot(coords[0, i, 0], coords[0, i, 1], m, mfc="white", mec=c, ms=5, zorder=3)
        ax.plot(coords[-1, i, 0], coords[-1, i, 1], m, color=c, mec="black", ms=6.5, zorder=4)
    x0, x1, y0, y1 = square_view(np.concatenate([path, coords]).reshape(-1, coords.shape[2])[:, :2])
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("first coordinate of $x_l$ (each point in every layer l)")
    ax.set_ylabel("second coordinate of $x_l$")
    ax.set_title(title, fontsize=10, color=WARNING_COLOUR if warning else "black")
    handles = [Line2D([], [], color=colours[j], lw=1.5, label=name) for j, name in enumerate(class_names)]
    handles += [
        Line2D([], [], ls=":", marker=".", color="grey", lw=0.8, label="network layers x_0 .. x_L, in order"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="grey", label="input x_0"),
        Line2D([], [], ls="", marker="o", color="grey", mec="black", label="last hidden x_L"),
    ]
    if flow is not None:
        handles += [
            Line2D([], [], ls="-", color="grey", lw=1.0, label="the network's ODE, solved from x_0"),
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
    # room for the k labels beside the points at both ends (k = 1 is the rightmost)
    ax.set_xlim(substep.min() / 1.5, substep.max() * 2.2)
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
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def depth_limit_figure(rows: Sequence[dict], kind: str = "residual") -> Figure:
    """ode_limit.csv rows: test accuracy, ODE gap and the change of g_0 between consecutive depths vs L."""
    depth = np.array([r["depth"] for r in rows], dtype=float)

    def col(name: str) -> np.ndarray:
        return np.array([np.nan if r.get(name) is None else r[name] for r in rows], dtype=float)

    fig = new_figure(13.0, 4.0)
    axes = fig.subplots(1, 3)
    T = rows[0].get("total_time") if rows else None
    fig.suptitle(
        f"{kind} networks at fixed total time T = L h = {T:g}" if T else f"{kind} networks", fontsize=11
    )
    ax = axes[0]
    ax.errorbar(
        depth,
        col("test_accuracy_mean"),
        yerr=np.nan_to_num(col("test_accuracy_std")),
        fmt="o-",
        color="#0072B2",
        capsize=3,
    )
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title("accuracy", fontsize=10)
    ax = axes[1]
    gap = col("ode_gap_mean")
    ax.errorbar(
        depth,
        gap,
        yerr=np.nan_to_num(col("ode_gap_std")),
        fmt="o-",
        color="#D55E00",
        capsize=3,
        label="ODE gap",
    )
    if np.isfinite(gap).any():
        i = int(np.flatnonzero(np.isfinite(gap))[0])
        ax.plot(depth, gap[i] * depth[i] / depth, ":", color="black", label="slope -1 (gap ~ h)")
    ax.set_yscale("log")
    ax.set_ylabel("ODE gap: k=1 error / spread of x(T)")
    ax.set_title("distance of the network from its ODE", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.errorbar(
        depth,
        col("g0_relative_change_mean"),
        yerr=np.nan_to_num(col("g0_relative_change_std")),
        fmt="o-",
        color="#009E73",
        capsize=3,
        label="median |g_0(L) - g_0(L')|_F / |g_0(L')|_F",
    )
    ax.plot(
        depth, col("log_volume_change_mean"), "s--", color="#CC79A7", label="mean |log vol(L) - log vol(L')|"
    )
    ax.set_yscale("log")
    ax.set_ylabel("change from the previous depth L'")
    ax.set_title("input metric g_0 on the grid", fontsize=10)
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(depth, [f"{d:g}" for d in depth])
        ax.set_xlabel("depth L (step h = T / L)")
        ax.grid(True, which="both", alpha=0.3)
    return fig


def log_volume_panels(
    panels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], title: str = ""
) -> Figure:
    """Input log-volume heatmaps side by side (in the order given), one colour scale.

    panels: title (e.g. "L = 4, h = 1") -> (grid_points (G, 2), grid_shape (ny, nx),
    1/2 log det g_0 (G,)), grid points with x fastest.
    """
    depths = list(panels)
    values = np.concatenate([panels[d][2][np.isfinite(panels[d][2])] for d in depths])
    # the run's input-space heat map and the sweep's map use the same scale
    cmap, norm, scale = log_volume_scale(values)
    fig = new_figure(2.3 * len(depths) + 1.0, 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(depths), sharex=True, sharey=True))
    image = None
    for ax, depth in zip(axes, depths):
        points, shape, logvol = panels[depth]
        ny, nx = (int(n) for n in shape)
        extent = (points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max())
        ax.set_facecolor(SINGULAR_COLOUR)  # -inf (a singular metric) is masked: this grey shows
        image = ax.imshow(
            np.ma.masked_invalid(logvol.reshape(ny, nx)),
            origin="lower",
            extent=extent,
            cmap=cmap,
            norm=norm,
            interpolation="nearest",
        )
        ax.set_aspect("equal")
        ax.set_title(depth, fontsize=10)
        ax.set_xlabel("input x_1")
    axes[0].set_ylabel("input x_2")
    if title:
        fig.suptitle(title, fontsize=11)
    if image is not None:
        fig.colorbar(
            image,
            ax=list(axes),
            label=f"½ log det g₀, input units{scale}\n(red stretched, blue shrunk; grey: −inf)",
            fraction=0.02,
            pad=0.01,
        )
    return fig


__all__ = [
    "convergence_figure",
    "depth_limit_figure",
    "log_volume_panels",
    "trajectory_figure",
]
