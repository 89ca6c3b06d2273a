"""Figures of the depth limit's two paths (riemexp.sweep.refine): weights along t, and the learned field.

weights_figure        every entry of W(t) and b(t) against t = l h, one line per depth,
                      one row per path (from scratch, refined)
vector_field_figure   the field sigma(W(t) x + b(t)) of a width-2 residual network as a stream
                      plot at four times t, with the data's trajectories over it; one row per network
"""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from riemexp.plotting.style import class_colours, class_markers, new_figure

PATH_TITLES = {"scratch": "from scratch", "refined": "refined (split, then trained)"}


def weights_figure(
    paths: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]], total_time: float | None
) -> Figure:
    """W_ij(t) and b_i(t), piecewise constant on [l h, (l+1) h), t in [0, T].

    paths: path -> {depth: (weight (L, w, w), bias (L, w))}. One row per path, one column per entry
    (W_11 .. W_ww, then b_1 .. b_w); lines coloured by depth (viridis, light = shallow).
    """
    width = next(iter(next(iter(paths.values())).values()))[0].shape[1]
    entries = [("W", i, j) for i in range(width) for j in range(width)] + [("b", i, 0) for i in range(width)]
    depths = sorted({d for by_depth in paths.values() for d in by_depth})
    cmap = matplotlib.colormaps["viridis"]
    colour = {d: cmap(0.85 * (1 - k / max(len(depths) - 1, 1))) for k, d in enumerate(depths)}
    fig = new_figure(2.6 * len(entries), 2.5 * len(paths) + 0.6)
    axes = np.atleast_2d(fig.subplots(len(paths), len(entries), sharex=True, sharey="col", squeeze=False))
    T = total_time or 1.0
    for row, (path, by_depth) in enumerate(paths.items()):
        for col, (name, i, j) in enumerate(entries):
            ax = axes[row, col]
            for depth, (weight, bias) in sorted(by_depth.items()):
                values = weight[:, i, j] if name == "W" else bias[:, i]
                edges = np.linspace(0, T, len(values) + 1)
                ax.stairs(values, edges, baseline=None, color=colour[depth], lw=1.2, label=f"L = {depth}")
            label = f"W_{i + 1}{j + 1}(t)" if name == "W" else f"b_{i + 1}(t)"
            ax.set_title(label if row == 0 else "", fontsize=10)
            ax.grid(True, alpha=0.3)
            if row == len(paths) - 1:
                ax.set_xlabel("t = l h")
        axes[row, 0].set_ylabel(PATH_TITLES.get(path, path), fontsize=9)
    handles, labels = axes[-1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncol=len(depths), title="depth")
    fig.suptitle(
        f"weights along depth at fixed T = L h = {T:g}: W(t) and b(t) of every depth, piecewise constant "
        "on [l h, (l+1) h) (first seed)",
        fontsize=11,
    )
    return fig


def vector_field_figure(panels: dict[str, dict[str, Any]]) -> Figure:
    """The learned field sigma(W(t) x + b(t)) of width-2 residual networks at four times, with trajectories.

    panels: row title (a path name) -> arrays of one network, in layer-0 (standardised) coordinates:
    "xs", "ys" (n,) the stream-plot lattice; "times" [(layer l, t = l h)]; "fields" [(n, n, 2)] the
    field sigma(W_l x + b_l) on the lattice at each time; "coords" (L+1, P, 2) the layer coordinates
    of P data points; "labels" (P,); "class_names"; "depth". Streamlines in grey (wider = faster);
    each point's trajectory x_0 .. x_l in its class colour, ending at x_l (marker).
    """
    fig = new_figure(15.0, 3.8 * len(panels) + 0.6)
    axes = np.atleast_2d(fig.subplots(len(panels), 4, squeeze=False))
    for row, (path, p) in enumerate(panels.items()):
        xs, ys, coords, labels = p["xs"], p["ys"], p["coords"], p["labels"]
        n_classes = len(p["class_names"])
        colours, markers = class_colours(n_classes), class_markers(n_classes)
        for col, ((layer, t), field) in enumerate(zip(p["times"], p["fields"])):
            ax = axes[row, col]
            speed = np.hypot(field[..., 0], field[..., 1])
            span = max(float(speed.max() - speed.min()), 1e-12)
            ax.streamplot(
                xs, ys, field[..., 0], field[..., 1], color="#a6a6a6", density=0.9,
                linewidth=0.3 + 1.5 * (speed - speed.min()) / span, arrowsize=0.7,
            )  # fmt: skip
            for label in range(n_classes):
                traj = coords[: layer + 1, labels == label]  # (l+1, p, 2)
                ax.plot(traj[..., 0], traj[..., 1], "-", color=colours[label], lw=0.6, alpha=0.6)
                ax.plot(
                    traj[-1, :, 0], traj[-1, :, 1], markers[label], color=colours[label], ms=3.5,
                    mec="white", mew=0.3, label=str(p["class_names"][label]),
                )  # fmt: skip
            ax.set_xlim(xs[0], xs[-1])
            ax.set_ylim(ys[0], ys[-1])
            ax.set_aspect("equal")
            ax.set_title(f"t = {t:.3g} (layer {layer} of {p['depth']})", fontsize=10)
            ax.set_xlabel("x_1 (layer-0 coordinates)")
            if col == 0:
                ax.set_ylabel(f"{PATH_TITLES.get(path, path)}\nx_2", fontsize=9)
        axes[row, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        "learned vector field sigma(W(t) x + b(t)) (grey streamlines, wider = faster) and data trajectories "
        "x(s), s <= t (deepest network of each path, first seed)",
        fontsize=11,
    )
    return fig


__all__: list[Any] = ["vector_field_figure", "weights_figure"]
