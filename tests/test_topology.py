"""riemexp.topology and riemexp.sweep.topology: the noise-free disc and ring, on a known decision boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from riemexp.config import NetworkConfig
from riemexp.nets.network import build_network
from riemexp.sweep import topology as sweep_topology
from riemexp.sweep.summary import Job, Summary
from riemexp.topology import disc_points, measure, ring_points


def _half_plane_network(cut: float) -> torch.nn.Module:
    """An identity residual network (W = 0, b = 0); head: logit_disc - logit_ring = cut - x_1."""
    model = build_network(NetworkConfig(depth=1, width=2), n_classes=2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.head.weight.copy_(torch.tensor([[0.5, 0.0], [-0.5, 0.0]]))
        model.head.bias.copy_(torch.tensor([-cut / 2, cut / 2]))
    return model.eval()


def test_noise_free_sets() -> None:
    disc = disc_points(0.5, 0.01)
    assert np.hypot(*disc.T).max() <= 0.5 and len(disc) == pytest.approx(math.pi * 0.25 / 1e-4, rel=0.02)
    assert np.allclose(np.hypot(*ring_points(100).T), 1.0)


def test_a_half_plane_crosses_the_ring_and_misses_the_disc() -> None:
    """Boundary x_1 = 0.75, the disc's side x_1 < 0.75: no disc point is wrong, the ring is wrong
    except on the arc cos(angle) > 0.75 (a fraction arccos(0.75) / pi), the boundary is 0.25 from
    the disc and crosses the ring."""
    values = measure(_half_plane_network(0.75), 0.5, torch.zeros(5, 2), n_ring=4000)
    assert values["disc_error"] == 0.0
    assert values["ring_error"] == pytest.approx(1 - math.acos(0.75) / math.pi, abs=1e-3)
    assert values["boundary_distance_disc"] == pytest.approx(0.25, abs=1e-3)
    assert values["boundary_distance_ring"] == 0.0 and values["folded_fraction"] == 0.0
    # boundary x_1 = 0.3 cuts the disc: its error is the disc's area right of the line
    inside = measure(_half_plane_network(0.3), 0.5)
    segment = 0.25 * math.acos(0.6) - 0.3 * math.sqrt(0.25 - 0.09)
    assert inside["disc_error"] == pytest.approx(segment / (math.pi * 0.25), abs=5e-3)
    assert inside["boundary_distance_disc"] == inside["boundary_distance_ring"] == 0.0  # a line crosses both


def test_topology_table_groups_by_width_and_setting(tmp_path) -> None:
    def job(n: int, width: int, lipschitz: float | None, seed: int, ring: float, certified: bool) -> Job:
        config = {
            "dataset.name": "circles",
            "network.width": width,
            "network.lipschitz": lipschitz,
            "seed": seed,
        }
        metrics = {
            "status": "completed",
            "test_accuracy": 0.99,
            "certified_invertible": certified,
            "disc_error": 0.0,
            "ring_error": ring,
            "boundary_distance_disc": 0.1,
            "boundary_distance_ring": 0.0 if ring else 0.2,
            "folded_fraction": 0.0,
        }
        return Job(str(n), tmp_path / str(n), config, metrics, {})

    jobs = [
        job(0, 2, 0.9, 0, 0.03, True),
        job(1, 2, 0.9, 1, 0.01, True),
        job(2, 3, None, 0, 0.0, False),
        job(3, 2, None, 0, 0.0, False),
    ]
    summary = Summary(tmp_path, jobs, ["network.width", "network.lipschitz", "seed"], [], [])
    assert sweep_topology.applies(summary)
    table, runs = sweep_topology.rows(summary)
    assert [(r["width"], r["lipschitz"]) for r in table] == [(2, "free"), (2, "0.9"), (3, "free")]
    certified = table[1]
    assert certified["certified"] == 2 and certified["ring_error_min"] == 0.01
    assert (
        certified["ring_error_mean"] == pytest.approx(0.02) and certified["boundary_distance_ring_min"] == 0.0
    )
    assert len(runs) == 4 and runs[1]["seed"] == 0 and runs[1]["ring_error"] == 0.03
