"""The layer animation: a GIF moving the data and the grid continuously from layer 0 to layer L.

Between layers l and l+1 every point moves along the straight segment
x(t) = (1 - t) x_l + t x_{l+1}, t in [0, 1) (for a residual network that is exactly the
forward-Euler step), and the square window moves with the points. Each frame is rendered by
matplotlib to RGBA and the GIF is written by Pillow (`write_gif`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from PIL import Image

from riemexp.io import atomic_save
from riemexp.plotting.data import FigureData
from riemexp.plotting.layers import MAX_SEGMENT, grid_lines
from riemexp.plotting.style import GRID_COLOUR, class_colours, class_markers, new_figure, square_view

MOVING_FRAMES = 72  # frames moving through the whole depth (more when depth is larger)
HOLD_FRAMES = 6  # still frames at the input and at the last layer
FPS = 12
DPI = 80


def render_frame(fig: Figure, dpi: float = DPI) -> Image.Image:
    """The figure as it stands, rendered to an RGBA image of its size in inches x dpi."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="rgba", dpi=dpi)
    width, height = (int(v * dpi) for v in fig.get_size_inches())
    return Image.frombuffer("RGBA", (width, height), buffer.getvalue(), "raw", "RGBA", 0, 1)


def write_gif(path: str | Path, frames: Sequence[Image.Image], fps: float = FPS) -> None:
    """Write frames as a looping GIF at fps frames per second (the format named, so any file
    name will do, e.g. a temporary `.tmp`). Colours are reduced to 256 by fast octree
    quantisation (PIL's default median cut is the slowest part)."""
    palette = [frame.quantize(method=Image.Quantize.FASTOCTREE) for frame in frames]
    palette[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=palette[1:],
        duration=int(1000 / fps),
        loop=0,
    )


def frame_times(depth: int, moving_frames: int = MOVING_FRAMES) -> np.ndarray:
    """Continuous layer positions s in [0, depth] of the frames, evenly spaced, holding at both ends."""
    moving = np.linspace(0.0, depth, max(moving_frames, depth), endpoint=False)
    return np.concatenate([np.zeros(HOLD_FRAMES), moving, np.full(HOLD_FRAMES, float(depth))])


def interpolate(coords: np.ndarray, s: float) -> np.ndarray:
    """Points at continuous layer position s: coords (L+1, M, 2) -> (M, 2)."""
    lo = min(int(math.floor(s)), coords.shape[0] - 1)
    hi = min(lo + 1, coords.shape[0] - 1)
    t = s - lo
    return (1 - t) * coords[lo] + t * coords[hi]


def write_animation(fd: FigureData, path: Path, moving_frames: int = MOVING_FRAMES) -> Path:
    """Write the layer-by-layer GIF to path (atomically); return path."""
    grid = fd.geometry["grid_coords"][..., :2]  # (L+1, G, 2)
    data = fd.geometry["data_coords"][..., :2]  # (L+1, N, 2)
    labels = fd.geometry["data_labels"]
    views = np.array([square_view(data[layer]) for layer in range(fd.depth + 1)])  # (L+1, 4)
    colours, markers = class_colours(fd.n_classes), class_markers(fd.n_classes)

    fig = new_figure(5.0, 5.4)
    ax = fig.subplots()
    lines = LineCollection(grid_lines(grid[0], fd.grid_shape), colors=GRID_COLOUR, linewidths=0.5, alpha=0.8)
    ax.add_collection(lines)
    scatters = [
        ax.scatter(
            data[0][labels == c, 0], data[0][labels == c, 1], s=7, c=col, marker=m, linewidths=0, label=name
        )
        for c, (col, m, name) in enumerate(zip(colours, markers, fd.class_names))
    ]
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.locator_params(nbins=4)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    note = f" (first 2 of {fd.width} coordinates)" if fd.width > 2 else ""
    ax.set_xlabel("coordinate 1" + note)
    ax.set_ylabel("coordinate 2")
    fig.suptitle(fd.title + (f"\n{fd.accuracy_line}" if fd.accuracy_line else ""), fontsize=8)

    def draw(s: float) -> None:
        view = interpolate(views[:, None, :], s)[0]
        # broken where neighbouring grid points land far apart, as in the layer row
        side = MAX_SEGMENT * (view[1] - view[0])
        lines.set_segments(grid_lines(interpolate(grid, s), fd.grid_shape, max_length=side))
        pts = interpolate(data, s)
        for c, scatter in enumerate(scatters):
            scatter.set_offsets(pts[labels == c])
        ax.set_xlim(view[0], view[1])
        ax.set_ylim(view[2], view[3])
        layer = int(math.floor(s))
        ax.set_title(
            f"layer {layer}" if s == layer else f"layer {layer} → {layer + 1}",
            fontsize=10,
        )

    # lay the figure out once (first frame), then freeze it: constrained layout per frame is slow
    draw(0.0)
    fig.canvas.draw()
    fig.set_layout_engine("none")

    frames = []
    for s in frame_times(fd.depth, moving_frames):
        draw(float(s))
        frames.append(render_frame(fig))
    atomic_save(path, lambda tmp: write_gif(tmp, frames))
    return path
