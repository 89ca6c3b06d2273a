"""Figures (riemexp.plotting) and `riemexp plot-metric`: headless, non-blank, reproducible, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from riemexp.analyses.geometry import compute_geometry
from riemexp.analyses.plots import draw_run_figures, figure_data, geometry_for_plots, redraw_run
from riemexp.cli import main as cli_main
from riemexp.config import (
    DatasetConfig,
    GeometryConfig,
    GlyphConvention,
    NetworkConfig,
    OdeConfig,
    PlotConfig,
)
from riemexp.data.dataset import make_dataset
from riemexp.errors import RunFolderError
from riemexp.layout import GEOMETRY_FILE
from riemexp.nets.network import build_network
from riemexp.plotting import (
    choose_layers,
    class_colours,
    glyph_axes,
    input_space_figure,
    layer_row_figure,
    make_glyphs,
    training_curves_figure,
    write_animation,
)
from riemexp.plotting.glyphs import FILL, MIN_FRACTION, ZERO_MARK, grid_glyph_indices, line_segments
from riemexp.runner import run
from tests.conftest import run_cli, tiny_config

# --------------------------------------------------------------------------- helpers


def pixels(fig) -> np.ndarray:
    """Render a figure headlessly: (H, W, 3) floats in [0, 1]."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3] / 255.0


def panel_pixels(fig, ax) -> np.ndarray:
    image = pixels(fig)
    x0, y0, x1, y1 = ax.get_window_extent().extents
    h = image.shape[0]
    return image[int(h - y1) : int(h - y0), int(x0) : int(x1)]


def figure_data_for(kind: str, width: int = 2, depth: int = 4, n_classes_name: str = "moons"):
    cfg = tiny_config(
        dataset=DatasetConfig.of(n_classes_name, n_samples=120),
        network=NetworkConfig(kind=kind, width=width, depth=depth),
        geometry=GeometryConfig(grid_density=16),
    )
    data = make_dataset(cfg.dataset, cfg.data_seed)
    torch.manual_seed(0)
    model = build_network(cfg.network, data.n_classes).eval()
    geometry = compute_geometry(model, data, cfg.geometry)
    return figure_data(model, cfg, data.class_names, geometry)


def small_run(tmp_path: Path, snapshots: int = 0, **plot: object) -> Path:
    """A completed tiny run folder (no ODE step) with small geometry and figures."""
    cfg = tiny_config(
        geometry=GeometryConfig(grid_density=16, snapshots=snapshots),
        plot=PlotConfig(glyph_density=6, **plot),  # type: ignore[arg-type]
        ode=OdeConfig(enabled=False),
    )
    out = tmp_path / "run"
    run(cfg, out)
    return out


def same_image(a: Path, b: Path) -> bool:
    x, y = np.asarray(Image.open(a).convert("RGB")), np.asarray(Image.open(b).convert("RGB"))
    return x.shape == y.shape and float(np.abs(x.astype(float) - y.astype(float)).max()) == 0.0


# --------------------------------------------------------------------------- glyph convention


def rotated(lam: tuple[float, float], degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    q = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return q @ np.diag(lam) @ q.T


def test_glyph_axes_follow_eigh_and_the_convention():
    g = rotated((1.0, 4.0), 30.0)[None]  # eigenvector of lambda=1 at 30 degrees
    axes, angle, degenerate = glyph_axes(g, GlyphConvention.STRETCH)
    np.testing.assert_allclose(axes[0], [1.0, 2.0])  # sqrt(lambda), ascending lambda
    assert math.isclose(math.tan(math.radians(angle[0])), math.tan(math.radians(30.0)), rel_tol=1e-9)
    axes, _, _ = glyph_axes(g, GlyphConvention.UNIT_BALL)
    np.testing.assert_allclose(axes[0], [1.0, 0.5])  # 1 / sqrt(lambda)
    assert not degenerate[0]


def test_degenerate_metrics_are_drawn_as_what_they_are():
    # exactly singular, zero, and singular to float64 precision (a saturated tanh: 1e-20 is noise)
    metrics = np.stack(
        [np.diag([1.0, 2.0]), np.diag([0.0, 3.0]), np.zeros((2, 2)), rotated((1e-20, 1.0), 20.0)]
    )
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    for convention in GlyphConvention:
        glyphs = make_glyphs(centres, metrics, convention, spacing=1.0)
        assert glyphs.degenerate.tolist() == [False, True, True, True]
        assert glyphs.rank.tolist() == [2, 1, 0, 1]
        sizes = np.stack([glyphs.widths, glyphs.heights], axis=1)
        assert np.all(np.isfinite(sizes)) and np.all(sizes <= FILL + 1e-12), sizes  # never beyond the fill
        # rank 1: a line (one drawn axis, the other exactly 0), never an ellipse that looks isotropic
        for k in (1, 3):
            assert sorted(sizes[k] > 0) == [False, True], sizes[k]
            assert sizes[k].max() >= MIN_FRACTION - 1e-12  # visible
        # g = 0: a cross of fixed size, not a circle
        assert glyphs.widths[2] == glyphs.heights[2] == ZERO_MARK
    # the line lies along the direction that survives (stretch) or is unbounded (unit ball)
    glyphs = make_glyphs(centres[3:], metrics[3:], GlyphConvention.STRETCH, spacing=1.0)
    (segment,) = line_segments(glyphs, np.array([True]))
    direction = (segment[1] - segment[0]) / np.linalg.norm(segment[1] - segment[0])
    surviving = np.array([math.cos(math.radians(110.0)), math.sin(math.radians(110.0))])
    assert abs(abs(direction @ surviving) - 1.0) < 1e-9
    glyphs = make_glyphs(centres[3:], metrics[3:], GlyphConvention.UNIT_BALL, spacing=1.0)
    (segment,) = line_segments(glyphs, np.array([True]))
    direction = (segment[1] - segment[0]) / np.linalg.norm(segment[1] - segment[0])
    assert abs(direction @ surviving) < 1e-9


def test_glyph_sizes_are_normalised_per_panel():
    scales = [1e-6, 1e-3, 1.0]  # the same shapes at wildly different magnitudes
    for s in scales:
        metrics = np.stack([s * np.diag([1.0, 1.0]), s * np.diag([1e-4, 2e-4]), s * np.diag([0.25, 1.0])])
        centres = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
        glyphs = make_glyphs(centres, metrics, GlyphConvention.STRETCH, spacing=1.0)
        long_axis = np.maximum(glyphs.widths, glyphs.heights)
        assert math.isclose(long_axis.max(), FILL, rel_tol=1e-12)  # the largest fills the spacing
        assert long_axis.min() >= MIN_FRACTION - 1e-12  # none vanishes
        # the tiny one was enlarged and says so; the others keep their relative size
        assert glyphs.enlarged.tolist() == [False, True, False]


def test_neighbouring_glyphs_do_not_overlap_on_a_squeezed_grid():
    _, pairs = grid_glyph_indices((5, 5), 5)
    centres = np.stack(np.meshgrid(np.arange(5.0) * 0.5, np.arange(5.0)), axis=-1).reshape(-1, 2)
    metrics = np.repeat(np.eye(2)[None], 25, axis=0)
    glyphs = make_glyphs(centres, metrics, GlyphConvention.STRETCH, spacing=1.0, pairs=pairs)
    i, j = pairs.T
    dist = np.linalg.norm(centres[i] - centres[j], axis=1)
    assert np.all((glyphs.widths[i] + glyphs.widths[j]) / 2 <= dist + 1e-12)


def test_choose_layers_evenly_spaced_with_first_and_last():
    assert choose_layers(10, None, 8) == [0, 2, 4, 6, 8, 10]  # not 0, 1, 3, 4, 6, 7, 9, 10
    assert choose_layers(50, None, 8) == [0, 10, 20, 30, 40, 50]
    assert choose_layers(20, None, 8) == [0, 4, 8, 12, 16, 20]
    assert choose_layers(3, None, 8) == [0, 1, 2, 3]
    assert choose_layers(13, None, 8) == [0, 2, 4, 6, 8, 10, 12, 13]  # prime: even steps, then the last
    for depth in range(1, 80):
        for asked in (2, 5, 8, 12):
            layers = choose_layers(depth, None, asked)
            assert layers[0] == 0 and layers[-1] == depth and len(layers) <= max(asked, 2)
            steps = np.diff(layers)
            assert (
                len(set(steps[:-1].tolist())) <= 1 and steps[-1] <= steps[0]
            )  # one step (the last may be short)
    assert choose_layers(10, [5, 0, 5], 8) == [0, 5]


def test_class_colours_any_number_of_classes():
    for n in (2, 3, 7, 12):
        colours = class_colours(n)
        assert len(colours) == n == len(set(colours))


# --------------------------------------------------------------------------- figures


@pytest.mark.parametrize(("kind", "width"), [("plain", 2), ("residual", 2), ("c2", 2), ("residual", 3)])
def test_layer_row_one_non_blank_panel_per_layer(kind: str, width: int):
    fd = figure_data_for(kind, width)
    layers = [0, 1, 4]
    fig = layer_row_figure(fd, layers, 5, GlyphConvention.STRETCH)
    panels = [ax for ax in fig.axes if ax.get_label().startswith("layer ")]
    assert [ax.get_label() for ax in panels] == [f"layer {k}" for k in layers]
    assert [ax.get_title() for ax in panels] == ["layer 0 (input)", "layer 1", "layer 4 (last hidden)"]
    for ax in panels:
        assert ax.get_aspect() == 1.0 and ax.get_xlabel() and ax.get_ylabel()
        assert panel_pixels(fig, ax).std() > 0.05  # data, grid and glyphs drawn, not blank
    if width > 2:
        assert any(
            "first two of 3 coordinates" in t.get_text()
            for t in fig.legends[0].texts + [fig.legends[0].get_title()]
        )


@pytest.mark.parametrize("kind", ["plain", "residual", "c2"])
def test_input_space_figure_is_non_blank(kind: str):
    fd = figure_data_for(kind)
    fig = input_space_figure(fd, 5, GlyphConvention.UNIT_BALL)
    for label in ("input regions", "input log volume"):
        (ax,) = [a for a in fig.axes if a.get_label() == label]
        assert ax.get_aspect() == 1.0
        assert panel_pixels(fig, ax).std() > 0.05
    assert "1/√λ" in fig.legends[0].get_title().get_text()  # the convention is stated


def test_three_classes_get_boundaries_and_colours():
    fd = figure_data_for("residual", n_classes_name="spirals")
    fd = type(fd)(**{**fd.__dict__, "class_names": ("a", "b", "c")})
    proba = np.random.default_rng(0).dirichlet(np.ones(3), size=fd.geometry["grid_proba"].shape[0])
    geometry = {**fd.geometry, "grid_proba": proba}
    head = np.random.default_rng(1).normal(size=(3, fd.width))
    fd = type(fd)(**{**fd.__dict__, "geometry": geometry, "head_weight": head, "head_bias": np.zeros(3)})
    fig = layer_row_figure(fd, [0, fd.depth], 4, GlyphConvention.STRETCH)
    assert pixels(fig).std() > 0.05
    assert pixels(input_space_figure(fd, 4, GlyphConvention.STRETCH)).std() > 0.05


def test_training_curves_and_animation(tmp_path: Path):
    epochs = np.arange(1, 21, dtype=float)
    history = {
        "epoch": epochs,
        "train_loss": 1 / epochs,
        "test_loss": 1.2 / epochs,
        "train_accuracy": 1 - 0.5 / epochs,
        "test_accuracy": 1 - 0.6 / epochs,
    }
    fig = training_curves_figure(history, "title")
    assert len(fig.axes) == 2 and pixels(fig).std() > 0.05
    gif = write_animation(figure_data_for("residual", depth=2), tmp_path / "layers.gif", moving_frames=8)
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames > 5
    assert not list(tmp_path.glob("*.tmp"))


def test_formats_on_request(tmp_path: Path):
    fd = figure_data_for("plain", depth=2)
    written = draw_run_figures(fd, PlotConfig(formats=("png", "pdf", "svg"), glyph_density=4), tmp_path, None)
    names = sorted(p.name for p in written)
    assert names == sorted(
        f"{stem}.{ext}" for stem in ("layers", "input_space") for ext in ("png", "pdf", "svg")
    )
    assert (tmp_path / "layers.pdf").read_bytes().startswith(b"%PDF")
    assert b"<svg" in (tmp_path / "layers.svg").read_bytes()[:2000]


# --------------------------------------------------------------------------- runs and plot-metric


def test_training_run_writes_figures_and_plot_metric_reproduces_them(tmp_path: Path):
    run_dir = small_run(tmp_path, snapshots=2)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["plots"] == [
        "plots/layers.png",
        "plots/input_space.png",
        "plots/training_curves.png",
        "plots/snapshots.png",
        "plots/snapshots.gif",
        "plots/boundary_curves.png",
    ]
    written = redraw_run(run_dir, out_dir=tmp_path / "replot")
    assert sorted(p.name for p in written) == sorted(Path(p).name for p in metrics["plots"])
    for path in written:
        assert same_image(path, run_dir / "plots" / path.name), path.name


def test_coarse_saved_geometry_is_recomputed(tmp_path: Path):
    run_dir = small_run(tmp_path)
    from riemexp.runner import load_run

    loaded = load_run(run_dir)
    plot = PlotConfig(glyph_density=30)
    arrays = geometry_for_plots(run_dir, loaded.model, loaded.data, loaded.config.geometry, plot)
    assert tuple(arrays["grid_shape"]) == (30, 30)  # the saved grid is 16 x 16
    arrays = geometry_for_plots(run_dir, loaded.model, loaded.data, loaded.config.geometry, plot, 59)
    assert tuple(arrays["grid_shape"]) == (59, 59)
    written = redraw_run(run_dir, {"glyph_density": 30, "layers": [0, 3]}, out_dir=tmp_path / "fine")
    assert {p.name for p in written} >= {"layers.png", "input_space.png"}


def test_plot_metric_bad_run_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run_dir = small_run(tmp_path)

    def error_of(folder: Path) -> str:
        capsys.readouterr()
        assert cli_main(["plot-metric", f"run={folder}", f"out={tmp_path / 'x'}"]) == RunFolderError.exit_code
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err
        return err

    assert "does not exist" in error_of(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "metrics.json").unlink()
    assert "metrics.json is missing" in error_of(broken)
    shutil.rmtree(broken)
    shutil.copytree(run_dir, broken)
    (broken / GEOMETRY_FILE).write_bytes(b"PK\x03\x04 not a zip")
    assert f"{GEOMETRY_FILE} is corrupt" in error_of(broken)
    (broken / GEOMETRY_FILE).unlink()
    metrics = json.loads((broken / "metrics.json").read_text())
    (broken / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
    assert "status 'running'" in error_of(broken)
    (broken / "metrics.json").write_text(json.dumps(metrics))
    (broken / "history.csv").unlink()
    assert "history.csv is missing" in error_of(broken)
    (broken / "model.pt").write_bytes(b"\x80\x02 not a pickle\n" * 20)
    assert "model.pt is corrupt" in error_of(broken)  # one line, not the unpickler's essay
    assert "is not a folder" in error_of(run_dir / "metrics.json")


def test_plot_metric_bad_options_and_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run_dir = small_run(tmp_path)
    (tmp_path / "a-file").write_text("")
    for options, code, expected in [
        (["plot.layers=[]"], 2, "plot.layers must list at least one layer"),
        (["plot.formats=[]"], 2, "plot.formats must be one or more of {png, pdf, svg}, got []"),
        ([f"out={tmp_path / 'a-file' / 'plots'}"], 2, "cannot write"),
    ]:
        capsys.readouterr()
        assert cli_main(["plot-metric", f"run={run_dir}", *options]) == code, options
        err = capsys.readouterr().err.strip()
        assert expected in err and err.count("\n") == 0 and "Traceback" not in err, err


@pytest.mark.slow
def test_plot_metric_cli_latest_run_no_hydra_folders(tmp_path: Path):
    run_dir = small_run(tmp_path)
    work = tmp_path / "work"
    shutil.copytree(run_dir, work / "outputs" / "2024-01-01" / "12-00-00_moons_residual")
    result = run_cli("plot-metric", "out=replot", "plot.formats=[png,svg]", cwd=work)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in work.iterdir()) == ["outputs", "replot"]  # no .hydra, no new outputs
    assert same_image(work / "replot" / "layers.png", run_dir / "plots" / "layers.png")
    assert (work / "replot" / "layers.svg").is_file()
    help_text = run_cli("plot-metric", "--help", cwd=work)
    assert (
        help_text.returncode == 0 and "glyph_density" in help_text.stdout and "unit_ball" in help_text.stdout
    )
    bad = run_cli("plot-metric", "plot.glyph=round", cwd=work)
    assert bad.returncode == 2 and "stretch, unit_ball" in bad.stderr and "Traceback" not in bad.stderr


def test_plot_metric_takes_a_bare_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run_dir = small_run(tmp_path)
    assert cli_main(["plot-metric", str(run_dir), f"out={tmp_path / 'bare'}"]) == 0
    assert same_image(tmp_path / "bare" / "layers.png", run_dir / "plots" / "layers.png")
    capsys.readouterr()
    assert cli_main(["plot-metric", str(run_dir), "extra"]) == 2
    assert "unexpected argument 'extra'" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["residual", "plain"])
def test_the_ode_figures_are_redrawn_from_the_saved_flow_and_table(tmp_path: Path, kind: str):
    """trajectories.png (with the ODE flow of ode.npz) and ode_convergence.png (tables/ode.csv) come back
    pixel for pixel from plot-metric; the ODE is not solved again."""
    cfg = tiny_config(
        network=NetworkConfig(kind=kind, depth=3),
        geometry=GeometryConfig(grid_density=16, snapshots=0),
        plot=PlotConfig(glyph_density=6),
        ode=OdeConfig(max_refinement=8),
    )
    run_dir = tmp_path / "run"
    run(cfg, run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ode_figures = ["plots/trajectories.png"] + (["plots/ode_convergence.png"] if kind == "residual" else [])
    assert metrics["plots"] == [
        "plots/layers.png",
        "plots/input_space.png",
        "plots/training_curves.png",
        *ode_figures,
    ]
    assert (run_dir / "ode.npz").is_file() == (kind == "residual")

    import riemexp.ode

    def no_solve(*args, **kwargs):
        raise AssertionError("plot-metric solved the ODE again")

    solve, riemexp.ode.reference_solve = riemexp.ode.reference_solve, no_solve
    try:
        written = redraw_run(run_dir, out_dir=tmp_path / "replot")
    finally:
        riemexp.ode.reference_solve = solve
    assert sorted(p.name for p in written) == sorted(Path(p).name for p in metrics["plots"])
    for path in written:
        assert same_image(path, run_dir / "plots" / path.name), path.name
    if kind == "residual":  # without its flow the figure is still drawn, from the layers alone
        (run_dir / "ode.npz").unlink()
        written = redraw_run(run_dir, out_dir=tmp_path / "no-flow")
        assert {p.name for p in written} >= {"trajectories.png"}
        assert not same_image(
            tmp_path / "no-flow" / "trajectories.png", run_dir / "plots" / "trajectories.png"
        )


def test_a_corrupt_ode_npz_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run_dir = tmp_path / "run"
    run(tiny_config(geometry=GeometryConfig(grid_density=16), ode=OdeConfig(max_refinement=4)), run_dir)
    (run_dir / "ode.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert cli_main(["plot-metric", f"run={run_dir}", f"out={tmp_path / 'x'}"]) == RunFolderError.exit_code
    err = capsys.readouterr().err.strip()
    assert "ode.npz is corrupt" in err and err.count("\n") == 0 and "Traceback" not in err
