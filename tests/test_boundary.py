"""The boundary numbers (riemexp.geometry.boundary) on cases known in closed form, and folds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from riemexp.config import NetworkConfig
from riemexp.geometry import boundary as bd
from riemexp.geometry import input_log_volume, make_grid
from riemexp.geometry.folds import folding_layers, layer_determinants, negative_fraction
from riemexp.nets.network import build_network

F64 = torch.float64


def tanh_classifier(a: float, scale: tuple[float, float]):
    """A plain tanh network, depth 1, W = I, b = 0, input scale s, and a head with
    logit_1 - logit_0 = 2 (tanh(x_1 / s_1) - tanh a).

    Class 1 iff x_1 > a s_1: the boundary is the line x_1 = a s_1 and the distance |x_1 - a s_1|.
    The volume element in input units is sech^2(x_1 / s_1) sech^2(x_2 / s_2) / (s_1 s_2).
    """
    model = build_network(NetworkConfig(kind="plain", width=2, depth=1, activation="tanh"), 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2)[None])
        model.bias.zero_()
        model.head.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        t = math.tanh(a)
        model.head.bias.copy_(torch.tensor([t, -t]))
        model.input_scale.copy_(torch.tensor(scale))
    return model.eval()


def exact_log_volume(x: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    s1, s2 = scale
    return np.log(1 / np.cosh(x[:, 0] / s1) ** 2) + np.log(1 / np.cosh(x[:, 1] / s2) ** 2) - math.log(s1 * s2)


@pytest.mark.parametrize("a", [0.0, 0.3])
def test_tanh_network_boundary_distance_and_volume_in_closed_form(a: float):
    scale = (2.0, 0.5)
    model = tanh_classifier(a, scale)
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.uniform(-3, 3, 200), rng.uniform(-2, 2, 200)])
    grid, shape = make_grid(data, 60, 0.1)
    spacing = grid[1, 0] - grid[0, 0]
    numbers, segments = bd.network_boundary_numbers(model, grid, shape, data)

    # the located boundary is the line x_1 = a s_1, to far below the grid spacing
    assert len(segments) == shape[0] - 1  # one segment per row of cells
    assert np.abs(segments[..., 0] - a * scale[0]).max() < 1e-5 * spacing
    np.testing.assert_allclose(numbers.boundary_length, grid[:, 1].max() - grid[:, 1].min(), rtol=1e-12)
    # distances and volumes against the closed forms
    d_exact = np.abs(grid[:, 0] - a * scale[0])
    np.testing.assert_allclose(bd.distance_to_segments(grid, segments), d_exact, atol=1e-5 * spacing)
    v = input_log_volume(model, grid).numpy()
    np.testing.assert_allclose(v, exact_log_volume(grid, scale), rtol=1e-12, atol=1e-12)
    # the numbers equal those of the exact arrays
    width = max(0.05 * (grid.max(0) - grid.min(0)).min(), spacing)
    assert numbers.band_width == pytest.approx(width, rel=1e-12)
    assert numbers.spearman_grid == pytest.approx(
        bd.spearman(exact_log_volume(grid, scale), d_exact), abs=1e-3
    )
    assert numbers.band_ratio_grid == pytest.approx(
        bd.band_ratio(exact_log_volume(grid, scale), d_exact, width), rel=1e-9
    )
    d_data = np.abs(data[:, 0] - a * scale[0])
    assert numbers.spearman_data == pytest.approx(
        bd.spearman(exact_log_volume(data, scale), d_data), abs=1e-9
    )
    assert numbers.n_band_data == int((d_data <= width).sum())


def test_points_on_a_line_across_a_centred_boundary_rank_exactly_minus_one():
    # boundary x_1 = 0 where sech^2 peaks: on the line x_2 = 0 the volume element falls strictly with
    # the distance, so Spearman is -1; the band ratio is the ratio of closed-form medians
    scale = (1.0, 1.0)
    model = tanh_classifier(0.0, scale)
    line = np.column_stack([np.linspace(-2.93, 3.07, 101), np.zeros(101)])
    grid, shape = make_grid(np.array([[-3.0, -1.0], [3.0, 1.0]]), 81, 0.0)
    numbers, _ = bd.network_boundary_numbers(model, grid, shape, line)
    assert numbers.spearman_data == pytest.approx(-1.0, abs=1e-12)
    width = numbers.band_width  # 0.05 x the box's shorter side (2): 0.1, above a grid spacing (0.075)
    assert width == pytest.approx(0.1)
    v = np.log(1 / np.cosh(line[:, 0]) ** 2)
    near = np.abs(line[:, 0]) <= width
    assert numbers.band_ratio_data == pytest.approx(
        math.exp(np.median(v[near]) - np.median(v[~near])), rel=1e-9
    )
    assert numbers.band_ratio_data > 1 and numbers.band_ratio_grid > 1 and numbers.spearman_grid < 0


def test_oblique_linear_boundary_and_constant_volume():
    # identity activation: a linear map, so g_0 is constant (Spearman undefined, band ratio 1) and
    # the boundary is the straight line n . x = c, at distance |n . x - c| / |n|
    model = build_network(NetworkConfig(kind="plain", width=2, depth=2, activation="identity"), 2)
    theta = 0.4
    rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    with torch.no_grad():
        model.weight.copy_(torch.stack([rot, 1.5 * torch.eye(2)]))
        model.bias.zero_()
        model.head.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
        model.head.bias.copy_(torch.tensor([0.0, -0.7]))
    n = (torch.tensor([1.0, 2.0]) @ (1.5 * rot)).double().numpy()  # logit_1 - logit_0 = n . x - 0.7
    grid, shape = make_grid(np.array([[-2.0, -2.0], [2.0, 2.0]]), 25, 0.0)
    numbers, segments = bd.network_boundary_numbers(model, grid, shape, grid)
    exact = np.abs(grid @ n - 0.7) / np.linalg.norm(n)
    spacing = grid[1, 0] - grid[0, 0]
    # the boundary is known inside the box only: compare where the nearest point of the line is inside
    foot = grid - np.outer(grid @ n - 0.7, n) / (n @ n)
    inside = np.all(np.abs(foot) <= 2 - spacing, axis=1)
    assert inside.mean() > 0.8
    distance = bd.distance_to_segments(grid, segments)
    np.testing.assert_allclose(distance[inside], exact[inside], atol=1e-5 * spacing)
    assert np.all(distance >= exact - 1e-5 * spacing)
    np.testing.assert_allclose(np.abs(segments.reshape(-1, 2) @ n - 0.7), 0.0, atol=1e-5 * spacing)
    assert math.isnan(numbers.spearman_grid)  # constant volume: no ranking
    assert numbers.band_ratio_grid == pytest.approx(1.0, rel=1e-9)
    assert numbers.as_metrics()["boundary_spearman_grid"] is None  # JSON has no NaN


def test_curved_and_three_class_boundaries():
    grid, shape = make_grid(np.array([[-2.0, -2.0], [2.0, 2.0]]), 41, 0.0)
    spacing = grid[1, 0] - grid[0, 0]

    def disc(p: np.ndarray) -> np.ndarray:
        return (np.hypot(p[:, 0], p[:, 1]) < 1.3).astype(int)

    segments = bd.boundary_segments(disc, grid, shape)
    ends = segments.reshape(-1, 2)
    assert np.abs(np.hypot(ends[:, 0], ends[:, 1]) - 1.3).max() < 1e-5 * spacing  # on the circle
    length = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1).sum()
    assert length == pytest.approx(2 * math.pi * 1.3, rel=2e-3)  # a chord polygon: O(spacing^2)
    exact = np.abs(np.hypot(grid[:, 0], grid[:, 1]) - 1.3)
    assert np.abs(bd.distance_to_segments(grid, segments) - exact).max() < spacing**2

    def sectors(p: np.ndarray) -> np.ndarray:  # three classes meeting at the origin
        return (np.floor((np.arctan2(p[:, 1], p[:, 0]) + math.pi) / (2 * math.pi / 3)) % 3).astype(int)

    segments = bd.boundary_segments(sectors, grid, shape)
    rays = [np.array([math.cos(t), math.sin(t)]) for t in (-math.pi, -math.pi / 3, math.pi / 3)]
    far = segments.reshape(-1, 2)
    far = far[np.hypot(far[:, 0], far[:, 1]) > 2 * spacing]  # away from the junction's star
    to_rays = np.min([np.abs(far @ np.array([-r[1], r[0]])) for r in rays], axis=0)
    assert to_rays.max() < 1e-5 * spacing
    # no boundary at all: NaN numbers, zero length
    none = bd.measure(np.zeros((0, 2, 2)), grid, shape, np.zeros(len(grid)), grid[:3], np.zeros(3))
    assert math.isnan(none.spearman_grid) and math.isnan(none.band_ratio_data) and none.boundary_length == 0


def test_spearman_and_ranks():
    a = np.array([3.0, 1.0, 2.0, 2.0, -np.inf])
    np.testing.assert_allclose(bd.average_ranks(a), [5.0, 2.0, 3.5, 3.5, 1.0])
    assert bd.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert bd.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(bd.spearman([1, 1, 1], [1, 2, 3])) and math.isnan(bd.spearman([1], [2]))
    assert math.isnan(bd.band_ratio(np.zeros(4), np.ones(4), 2.0))  # nothing outside the band
    # with ties on both sides; the value is scipy.stats.spearmanr's
    x, y = [1, 2, 2, 3, 5, 5, 5, 0, 4, 1], [0.3, -1, 2, 0.5, 0.5, 7, 1, -2, 3, 0]
    assert bd.spearman(x, y) == pytest.approx(0.7369304046042952, abs=1e-14)


def test_fold_fractions_and_layers_of_a_residual_layer():
    # residual x + h tanh(W x) with W = diag(-3, 1), h = 1: det J = (1 - 3 sech^2(-3 x_1)) (1 + sech^2(x_2)),
    # negative exactly where sech^2(3 x_1) > 1/3, i.e. |x_1| < atanh(sqrt(2/3)) / 3
    model = build_network(NetworkConfig(kind="residual", width=2, depth=1, step_size=1.0), 2)
    with torch.no_grad():
        model.weight.copy_(torch.diag(torch.tensor([-3.0, 1.0]))[None])
        model.bias.zero_()
    grid, _ = make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), 50, 0.0)
    dets = layer_determinants(model, grid)
    exact = (1 - 3 / np.cosh(3 * grid[:, 0]) ** 2) * (1 + 1 / np.cosh(grid[:, 1]) ** 2)
    np.testing.assert_allclose(dets[0], exact, rtol=1e-12, atol=1e-12)
    inside = np.abs(grid[:, 0]) < math.atanh(math.sqrt(2 / 3)) / 3
    assert negative_fraction(dets)[0] == pytest.approx(inside.mean())
    assert folding_layers(dets) == [0]
