"""Figures that show the science and never flatter a model that did not learn (issue 13).

Each test reads the figure data (glyphs, boundaries, images, legends, titles) that the
figures are drawn from, or the tables, rather than pixels.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import EllipseCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.text import Text

from riemexp import verdict
from riemexp.analyses.geometry import compute_geometry
from riemexp.analyses.ode import points_per_class
from riemexp.analyses.plots import coordinate_names, figure_data, run_title
from riemexp.config import (
    DatasetConfig,
    GeometryConfig,
    GlyphConvention,
    NetworkConfig,
    OptimConfig,
    RunConfig,
)
from riemexp.data.dataset import make_dataset
from riemexp.nets.network import build_network
from riemexp.plotting import input_space_figure, layer_row_figure
from riemexp.plotting.glyphs import KEY_LENGTHS, SIZE_POWER, grid_glyph_indices, legend_handles, make_glyphs
from riemexp.plotting.input_space import input_glyphs
from riemexp.plotting.layers import grid_lines, layer_glyphs
from riemexp.plotting.regions import REGION_TINT, boundary_lines, class_margins, draw_boundaries, region_image
from riemexp.plotting.style import WARNING_COLOUR, class_colours, log_volume_scale
from riemexp.plotting.trajectories import convergence_figure, trajectory_figure
from riemexp.train import train
from tests.conftest import REPO, run_cli, tiny_config

# --------------------------------------------------------------------------- helpers


def rendered(fig: Figure):
    """Draw the figure (Agg, nothing written) and return its renderer."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def trained_figure_data(dataset: DatasetConfig, width: int = 2, epochs: int = 300):
    """Figure data of a trained residual network (depth 10, the default recipe) on `dataset`."""
    cfg = RunConfig(
        dataset=dataset,
        network=NetworkConfig(width=width),
        optim=OptimConfig(epochs=epochs),
        geometry=GeometryConfig(grid_density=36),
    )
    data = make_dataset(cfg.dataset, cfg.data_seed)
    result = train(cfg, data)
    model = result.model.cpu().eval()
    geometry = compute_geometry(model, data, cfg.geometry)
    metrics = {"test_accuracy": result.history[-1]["test_accuracy"]}
    metrics.update(verdict.assess(metrics["test_accuracy"], data.y_test.numpy()))
    return figure_data(model, cfg, data.class_names, geometry, metrics)


def untrained_figure_data(kind: str = "residual", depth: int = 10, dataset: str = "moons", **extra):
    cfg = tiny_config(
        dataset=DatasetConfig(name=dataset, n_samples=150, **extra),
        network=NetworkConfig(kind=kind, depth=depth),
        geometry=GeometryConfig(grid_density=24),
    )
    data = make_dataset(cfg.dataset, cfg.data_seed)
    torch.manual_seed(0)
    model = build_network(cfg.network, data.n_classes).eval()
    return figure_data(model, cfg, data.class_names, compute_geometry(model, data, cfg.geometry))


# --------------------------------------------------------------------------- glyph sizes


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "width"),
    [(DatasetConfig(name="spirals", n_samples=300), 2), (DatasetConfig(name="circles", n_samples=300), 3)],
    ids=["spirals", "circles-width3"],
)
def test_glyphs_where_space_is_stretched_are_drawn_clearly_larger(dataset: DatasetConfig, width: int):
    fd = trained_figure_data(dataset, width)
    assert fd.geometry is not None and not fd.near_chance
    glyphs, idx = input_glyphs(fd, 12, GlyphConvention.STRETCH)
    log_volume = fd.grid_input_log_volume[idx]
    top = log_volume >= np.quantile(log_volume, 0.95)
    long_axis, area = glyphs.long_axis, glyphs.widths * glyphs.heights
    # the 5 % of glyphs where the volume element is largest: clearly larger than the median glyph
    assert np.median(long_axis[top]) >= 1.8 * np.median(long_axis), (long_axis[top], np.median(long_axis))
    assert np.median(area[top]) >= 1.5 * np.median(area)
    # and most glyphs are drawn at their size on the figure's scale, not at a floor
    assert glyphs.enlarged.mean() < 0.25
    # the layer-0 panel of the layer row draws g_0 on the same rule
    layer0 = layer_glyphs(fd, 0, 12, GlyphConvention.STRETCH)
    grid_top = fd.grid_input_log_volume >= np.quantile(fd.grid_input_log_volume, 0.95)
    flat, _ = grid_glyph_indices(fd.grid_shape, 12)
    top0 = grid_top[flat]
    if top0.any():
        assert np.median(layer0.long_axis[top0]) >= 1.5 * np.median(layer0.long_axis)


def test_glyph_size_scale_and_its_key_agree():
    # true long axes 1, 1/4, 1/16 of the largest are drawn at 1, 1/2, 1/4 of its drawn length
    lengths = np.array(KEY_LENGTHS)
    metrics = np.stack([np.diag([(0.5 * a) ** 2, a**2]) for a in lengths])
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    glyphs = make_glyphs(centres, metrics, GlyphConvention.STRETCH, spacing=1.0)
    np.testing.assert_allclose(glyphs.long_axis / glyphs.long_axis[0], lengths**SIZE_POWER)
    np.testing.assert_allclose(glyphs.widths / glyphs.heights, 0.5)  # shape kept
    # the legend's key: markers in the same ratios, labelled with the true ratios
    key = legend_handles([glyphs], GlyphConvention.STRETCH)[: len(lengths)]
    sizes = np.array([h.get_markersize() for h in key])
    np.testing.assert_allclose(sizes / sizes[0], lengths**SIZE_POWER)
    assert [h.get_label().split()[1] for h in key] == ["×1", "×1/4", "×1/16"]


# --------------------------------------------------------------------------- boundaries and regions


def test_boundaries_of_three_classes_meet_where_the_predicted_class_changes():
    n = 61
    xs = ys = np.linspace(-1.0, 1.0, n)
    mx, my = np.meshgrid(xs, ys)
    angle = np.arctan2(my, mx)
    # three classes meeting at the origin (junction), like the centre of five gaussians
    scores = np.stack([np.cos(angle - 2 * np.pi * c / 3) * np.hypot(mx, my) for c in range(3)], axis=-1)
    fig = Figure()
    ax = fig.add_subplot()
    assert draw_boundaries(ax, xs, ys, scores)
    vertices = np.concatenate([p.vertices for c in ax.collections for p in c.get_paths()])
    cell = xs[1] - xs[0]
    # no gap at the junction: the boundary reaches the point where the three classes meet
    assert np.min(np.hypot(*vertices.T)) < cell
    # and lies where the predicted class changes: the best two scores tie there
    theta = np.arctan2(vertices[:, 1], vertices[:, 0])
    s = np.sort(np.stack([np.cos(theta - 2 * np.pi * c / 3) for c in range(3)], axis=1), axis=1)
    far = np.hypot(*vertices.T) > 2 * cell
    assert np.max(s[far, 2] - s[far, 1]) < 0.1

    # dashed boundaries are drawn once (dashes of two copies would not line up): half the length
    def length(lines):
        return sum(np.linalg.norm(np.diff(line, axis=0), axis=1).sum() for line in lines)

    twice, once = boundary_lines(xs, ys, scores), boundary_lines(xs, ys, scores, once=True)
    assert length(once) == pytest.approx(length(twice) / 2, rel=0.05)
    # the margins are continuous across the junction (what makes the contour complete)
    margins = class_margins(scores)
    assert np.max(np.abs(np.diff(margins, axis=0))) < 4 * cell


def test_region_colours_leave_points_of_that_colour_visible():
    for n in (2, 3, 5):
        colours = class_colours(n)
        scores = np.eye(n)[None]  # one mesh row, each class certain
        region = region_image(scores, colours, np.full((1, n), REGION_TINT))[0]
        for c, colour in enumerate(colours):
            # a point's colour against its own region's colour: far apart in RGB
            assert np.linalg.norm(np.array(to_rgb(colour)) - region[c]) > 0.4, (colour, region[c])
    fd = untrained_figure_data()
    fig = input_space_figure(fd, 6, GlyphConvention.STRETCH)
    (ax,) = [a for a in fig.axes if a.get_label() == "input regions"]
    points = [c for c in ax.collections if c.get_offsets().shape[0] == len(fd.geometry["data_points"]) // 2]
    assert points and all(np.asarray(c.get_linewidths()).max() > 0 for c in points)  # a dark rim


# --------------------------------------------------------------------------- layout


def test_legend_and_titles_fit_with_six_layers_and_five_classes():
    fd = untrained_figure_data(depth=10)
    fig = layer_row_figure(fd, [0, 2, 4, 6, 8, 10], 6, GlyphConvention.STRETCH)
    renderer = rendered(fig)
    legend = fig.legends[0].get_window_extent(renderer)
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.width, (legend, fig.bbox)
    fd5 = untrained_figure_data(dataset="gaussians", n_classes=5)
    for figure in (fig, input_space_figure(fd5, 6, GlyphConvention.STRETCH)):
        renderer = rendered(figure)
        suptitle = figure._suptitle.get_window_extent(renderer)
        for ax in figure.axes:
            if ax.get_title():
                assert not suptitle.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
        legend = figure.legends[0].get_window_extent(renderer)
        assert legend.x0 >= 0 and legend.x1 <= figure.bbox.width


def test_last_layer_draws_no_glyph_discs_over_the_data():
    fd = untrained_figure_data(depth=4)
    fig = layer_row_figure(fd, [0, 4], 6, GlyphConvention.STRETCH)
    first, last = [a for a in fig.axes if a.get_label().startswith("layer ")]
    assert any(isinstance(c, EllipseCollection) for c in first.collections)
    assert not any(isinstance(c, EllipseCollection) for c in last.collections)
    assert any("= I" in t.get_text() for t in last.texts)  # says why


def test_plain_network_grid_lines_do_not_jump_across_the_panel():
    # a row of grid points whose images jump from one corner to the other (a saturated plain layer)
    row = np.stack([np.r_[np.linspace(-1, -0.9, 10), np.linspace(0.9, 1, 10)], np.zeros(20)], axis=1)
    coords = np.concatenate([row, row + [0, 0.05]])
    lines = grid_lines(coords, (2, 20), count=2, max_length=0.2)
    for line in lines:
        assert np.max(np.linalg.norm(np.diff(line, axis=0), axis=1)) <= 0.2
    assert sum(len(line) for line in lines[:2]) == 20  # every point kept, the jump dropped


def test_degenerate_heat_map_says_singular_without_a_colour_bar():
    fd = untrained_figure_data()
    fd = dataclasses.replace(fd, grid_input_log_volume=np.full_like(fd.grid_input_log_volume, -np.inf))
    fig = input_space_figure(fd, 6, GlyphConvention.STRETCH)
    assert len(fig.axes) == 2  # no colour bar
    (ax,) = [a for a in fig.axes if a.get_label() == "input log volume"]
    assert any("singular everywhere" in t.get_text() for t in ax.texts)


def test_no_implementation_words_in_figures():
    fd = untrained_figure_data(kind="plain")
    figures = [
        input_space_figure(fd, 6, GlyphConvention.STRETCH),
        layer_row_figure(fd, [0, 5, 10], 6, "stretch"),
    ]
    coords = np.random.default_rng(0).normal(size=(51, 6, 2))
    figures.append(trajectory_figure(coords, np.array([0, 0, 0, 1, 1, 1]), ("a", "b"), "t", flow=coords))
    for fig in figures:
        texts = [t.get_text() for t in fig.findobj(Text)]
        for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
            texts += [t.get_text() for t in legend.texts] + [legend.get_title().get_text()]
        words = set(re.findall(r"[\w-]+", " ".join(texts)))
        assert not words & {"eigh", "atan2", "dopri5", "arctan2", "EllipseCollection"}, words
        assert "standardised input" not in " ".join(texts)


def test_heat_map_is_fine_by_default_and_shares_the_sweep_colour_scale():
    assert GeometryConfig().grid_density >= 80
    fd = untrained_figure_data()
    fig = input_space_figure(fd, 6, GlyphConvention.STRETCH)
    (ax,) = [a for a in fig.axes if a.get_label() == "input log volume"]
    (image,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    cmap, norm, _ = log_volume_scale(fd.grid_input_log_volume)
    assert image.get_cmap().name == cmap.name
    assert (image.norm.vmin, image.norm.vmax) == (norm.vmin, norm.vmax)
    assert type(image.norm) is type(norm)


def test_trajectories_stay_readable_at_depth_50_and_convergence_labels_fit():
    assert points_per_class(10) == 15 and points_per_class(50) <= 4
    rows = [
        {"k": k, "substep": 0.5 / k, "error_mean": 1.0 / k, "error_max": 3.0 / k}
        for k in (1, 2, 4, 8, 16, 32, 64)
    ]
    fig = convergence_figure(rows, "t")
    renderer = rendered(fig)
    (ax,) = fig.axes
    box = ax.get_window_extent(renderer)
    for text in ax.texts:
        assert box.contains(*text.get_window_extent(renderer).p1) and box.contains(
            *text.get_window_extent(renderer).p0
        ), text.get_text()


# --------------------------------------------------------------------------- names and tables


def test_csv_runs_are_titled_by_file_and_axes_by_column():
    cfg = RunConfig(dataset=DatasetConfig(name="csv", path=str(REPO / "docs" / "examples" / "penguins.csv")))
    assert run_title(cfg).startswith("penguins.csv ·")
    assert coordinate_names(cfg) == ("bill_length_mm", "bill_depth_mm")
    fd = untrained_figure_data()
    fd = dataclasses.replace(fd, coordinate_names=("bill_length_mm", "bill_depth_mm"))
    fig = input_space_figure(fd, 6, GlyphConvention.STRETCH)
    (ax,) = [a for a in fig.axes if a.get_label() == "input regions"]
    assert ax.get_xlabel().startswith("bill_length_mm") and ax.get_ylabel() == "bill_depth_mm"


def test_sweep_tables_give_plain_networks_no_step_size():
    from riemexp.sweep.summary import Job, grouped_rows, summary_rows

    jobs = [
        Job(
            str(i),
            Path(str(i)),
            {"network.kind": kind, "network.step_size": h, "seed": 0},
            {"status": "completed"},
            {},
        )
        for i, (kind, h) in enumerate([("plain", 0.5), ("residual", 0.1), ("residual", 0.5)])
    ]
    rows = summary_rows(jobs, ["network.kind", "network.step_size"])
    steps = {r["network.kind"] + str(r["job"]): r["network.step_size"] for r in rows}
    assert steps == {"plain0": None, "residual1": 0.1, "residual2": 0.5}
    assert [g["network.step_size"] for g in grouped_rows(rows, ["network.kind", "network.step_size"])] == [
        None,
        0.1,
        0.5,
    ]


# --------------------------------------------------------------------------- a model that did not learn


def test_near_chance_is_defined_against_the_majority_class():
    labels = np.array([0, 1] * 50)
    assert verdict.chance_accuracy(labels) == 0.5
    assert verdict.near_chance_below(0.5) == pytest.approx(0.7)
    assert verdict.assess(0.69, labels)["near_chance"] and "warning" in verdict.assess(0.56, labels)
    assert verdict.assess(0.71, labels) == {"chance_accuracy": 0.5, "near_chance": False}
    skewed = np.array([0] * 80 + [1] * 20)  # always answering 0 scores 0.8: 0.85 has learned little
    assert verdict.assess(0.85, skewed)["near_chance"] and not verdict.assess(0.95, skewed)["near_chance"]
    assert verdict.near_chance_below(1 / 3) == pytest.approx(0.6)  # three balanced classes


def test_a_run_near_chance_says_so_in_terminal_metrics_and_titles(tmp_path: Path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "dataset=xor",  # quadrants: a network that has not moved from the identity is at chance
        "dataset.n_samples=200",
        "network.depth=2",
        "optim.epochs=2",
        "optim.lr=1e-6",
        "geometry.grid_density=16",
        "plot.glyph_density=6",
        "ode.enabled=false",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["near_chance"] is True
    assert metrics["chance_accuracy"] == pytest.approx(0.5, abs=0.05)
    assert "near chance" in metrics["warning"] and f"{metrics['test_accuracy']:.3f}" in metrics["warning"]
    output = proc.stdout + proc.stderr
    assert "near chance" in output
    assert "**near chance**" in (out / "report.md").read_text()
    # the closing lines name the main figures
    assert str(out / "plots" / "input_space.png") in output and str(out / "plots" / "layers.png") in output
    from riemexp.runner import load_run

    loaded = load_run(out)
    fd = figure_data(loaded.model, loaded.config, loaded.data.class_names, loaded.geometry, loaded.metrics)
    fig = input_space_figure(fd, 6, GlyphConvention.STRETCH)
    assert (
        "NEAR CHANCE" in fig._suptitle.get_text()
        and f"{metrics['test_accuracy']:.3f}" in fig._suptitle.get_text()
    )
    assert fig._suptitle.get_color() == WARNING_COLOUR


def test_a_good_run_titles_carry_its_test_accuracy():
    fd = untrained_figure_data()
    fd = dataclasses.replace(
        fd, accuracy_line=verdict.title_line({"test_accuracy": 0.996, "near_chance": False})
    )
    for fig in (input_space_figure(fd, 6, "stretch"), layer_row_figure(fd, [0, 10], 6, "stretch")):
        assert "test accuracy 0.996" in fig._suptitle.get_text() and "NEAR" not in fig._suptitle.get_text()
    assert verdict.chance_accuracy([1, 1, 0]) == pytest.approx(2 / 3)
