"""The ODE measurement of K networks at once (riemexp.ode_batch) equals each network's own, bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from riemexp.activations import get_activation
from riemexp.config import NetworkConfig
from riemexp.nets.network import build_network
from riemexp.ode import measure
from riemexp.ode_batch import _sigma_members, measure_members
from riemexp.threads import using_threads

TOLERANCES = {"rtol": 1e-7, "atol": 1e-9}


def member(kind: str, seed: int, depth: int, h: float, activation: str = "tanh", width=2, scale=1.0, n=200):
    """A freshly initialised network (seeded), its weights scaled, and its own n input points."""
    torch.manual_seed(seed)
    cfg = NetworkConfig(kind=kind, width=width, depth=depth, step_size=h, activation=activation)
    net = build_network(cfg, 2)
    with torch.no_grad():
        net.weight.mul_(scale)
        net.bias.add_(0.3 * seed)
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(100 + seed))
    return net.eval(), x


def same(a, b) -> bool:
    """Equal bit for bit: numbers (None and NaN included), rows, tensors."""
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def assert_same_report(batched, alone) -> None:
    assert batched.rows == alone.rows
    for name in ("order", "gap", "spread"):
        assert same(getattr(batched, name), getattr(alone, name)), name
    s, t = batched.solution, alone.solution
    assert same(s.times, t.times) and same(s.path, t.path)
    assert (s.layer_index, s.evaluations, s.converged, s.stopped_layer) == (
        t.layer_index,
        t.evaluations,
        t.converged,
        t.stopped_layer,
    )


def check(members, max_refinement=8, **options) -> list:
    models, xs = [m for m, _ in members], [x for _, x in members]
    reports = measure_members(models, xs, max_refinement, **TOLERANCES, **options)
    assert len(reports) == len(models)
    for model, x, report in zip(models, xs, reports):
        assert_same_report(report, measure(model, x, max_refinement, **TOLERANCES, **options))
    return reports


@pytest.mark.parametrize(
    ("kind", "activation", "depth", "width", "n"),
    [
        ("residual", "tanh", 3, 2, 200),
        ("residual", "softplus", 5, 2, 201),  # N w not a multiple of 16: sigma member by member
        ("c2", "tanh", 4, 2, 200),
        ("c2", "sigmoid", 3, 3, 201),
    ],
)
def test_members_measure_as_each_alone(kind, activation, depth, width, n):
    """Different seeds (weights, points) and step sizes; every number as the member's own measure."""
    members = [
        member(kind, seed, depth, h, activation, width, n=n)
        for seed, h in [(0, 0.1), (1, 0.5), (2, 1.0), (3, 0.5)]
    ]
    reports = check(members, n_dense=3)
    assert all(r.converged for r in reports)
    assert len({r.solution.evaluations for r in reports}) > 1  # the members stepped differently


def test_a_member_out_of_budget_stops_alone():
    """A stiff member (huge weights) runs out of its budget; the others converge as alone, and the
    stiff one reports what `measure` reports (no rows, the path up to its stopped layer)."""
    stiff = member("residual", 1, 3, 1.0, scale=1e4)
    members = [member("residual", 0, 3, 0.5), stiff, member("residual", 2, 3, 0.1)]
    reports = check(members, max_steps_per_layer=30)
    assert [r.converged for r in reports] == [True, False, True]
    assert reports[1].solution.stopped_layer is not None and reports[1].rows == []


def test_one_member_and_one_step_per_layer():
    (report,) = check([member("c2", 4, 2, 0.5)])
    assert report.converged
    reports = check([member("residual", 0, 2, 0.5), member("c2", 1, 2, 0.5)][:1], max_steps_per_layer=1)
    assert not reports[0].converged


def test_members_must_share_their_shape():
    with pytest.raises(ValueError, match="share kind, width, depth"):
        measure_members(
            [member("residual", 0, 2, 0.5)[0], member("residual", 1, 3, 0.5)[0]],
            [torch.zeros(5, 2)] * 2,
            8,
            **TOLERANCES,
        )
    with pytest.raises(ValueError, match="kind with an ODE"):
        measure_members([member("plain", 0, 2, 0.5)[0]], [torch.zeros(5, 2)], 8, **TOLERANCES)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize(("K", "n", "w"), [(9, 2000, 2), (5, 1000, 3), (3, 37, 5), (4, 8, 2)])
def test_the_activation_of_members_rounds_as_alone(activation, K, n, w):
    """sigma of a (K, N, w) tensor, evaluated by slices of members where that rounds alike (one
    piece of whole vector blocks), each member as sigma of its own (N, w) tensor: at 1 and 2
    threads, across the size above which torch cuts a kernel into pieces (9 x 2000 x 2 > 32768)."""
    sigma, _ = get_activation(activation)
    z = 3 * torch.randn(K, n, w, dtype=torch.float64, generator=torch.Generator().manual_seed(K * n))
    for threads in (1, 2):
        with using_threads(threads):
            batched = _sigma_members(sigma, z)
            assert all(torch.equal(batched[m], sigma(z[m].clone())) for m in range(K))
