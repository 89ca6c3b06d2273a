"""The matrix logarithm of the Lie table: the closed form for 2 x 2 against references, and the
table of trained networks the same by the closed form and by the general algorithm."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from riemexp.config import NetworkConfig
from riemexp.data.dataset import make_dataset
from riemexp.data.toy import SpiralsConfig
from riemexp.geometry.lie import has_real_log, lie_table, matrix_log, matrix_log_remainder
from riemexp.nets.network import build_network
from riemexp.train import train
from tests.conftest import tiny_config

F64 = torch.float64
EYE = torch.eye(2, dtype=F64)
N = 40  # matrices per case


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _similar(diag_or_jordan: torch.Tensor, seed: int) -> torch.Tensor:
    """P B P^-1 for random P: (N, 2, 2)."""
    p = torch.randn(len(diag_or_jordan), 2, 2, generator=_gen(seed), dtype=F64) + 2 * EYE
    return p @ diag_or_jordan @ torch.linalg.inv(p)


def _positive(seed: int) -> torch.Tensor:
    return torch.rand(N, generator=_gen(seed), dtype=F64) * 4 + 0.05


def _case(name: str) -> torch.Tensor:
    lam = _positive(1)[:, None, None]
    nil = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64)
    if name == "complex pair":  # r (cos t I + sin t R), t up to 3.1: eigenvalues near the negative axis too
        t = (torch.rand(N, generator=_gen(2), dtype=F64) * 3.1)[:, None, None]
        rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
        return _similar(lam * (torch.cos(t) * EYE + torch.sin(t) * rot), 3)
    if name == "real distinct":
        return _similar(torch.diag_embed(torch.stack([_positive(4), _positive(5)], 1)), 6)
    if name == "random exp":
        return torch.linalg.matrix_exp(torch.randn(N, 2, 2, generator=_gen(7), dtype=F64))
    if name == "scalar":
        return lam * EYE
    if name == "jordan":
        return _similar(lam * EYE + nil, 8)
    if name.startswith("nearly repeated"):  # discriminant +-1e-12 lam^2
        sign = 1.0 if name.endswith("+") else -1.0
        return _similar(lam * EYE + lam * torch.tensor([[0.0, 1.0], [sign * 1e-12, 0.0]], dtype=F64), 9)
    raise AssertionError(name)


CASES = [
    "complex pair",
    "real distinct",
    "random exp",
    "scalar",
    "jordan",
    "nearly repeated +",
    "nearly repeated -",
]


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((torch.linalg.matrix_norm(x - ref) / torch.linalg.matrix_norm(ref).clamp_min(1e-300)).max())


def _scipy_logm(a: torch.Tensor) -> torch.Tensor:
    linalg = pytest.importorskip("scipy.linalg")
    with warnings.catch_warnings():  # scipy's own error estimate ("may be inaccurate", ~1e-13)
        warnings.simplefilter("ignore", RuntimeWarning)
        return torch.stack([torch.as_tensor(linalg.logm(m.numpy()).real) for m in a])


@pytest.mark.parametrize("name", CASES)
def test_closed_form_log_matches_scipy_the_general_algorithm_and_expm(name):
    a = _case(name)
    assert has_real_log(a).all()
    log = matrix_log(a)
    assert _rel(log, _scipy_logm(a)) < 1e-12
    assert _rel(log, matrix_log(a, method="general")) < 1e-12
    assert _rel(torch.linalg.matrix_exp(log), a) < 1e-12
    if name == "scalar":
        assert _rel(log, torch.log(a[:, :1, :1]) * EYE) < 1e-15


def test_closed_form_log_of_a_jordan_block_is_exact():
    lam = 2.0
    log = matrix_log(torch.tensor([[lam, 1.0], [0.0, lam]], dtype=F64))
    assert torch.allclose(
        log, torch.tensor([[math.log(lam), 1 / lam], [0.0, math.log(lam)]], dtype=F64), atol=1e-16
    )


@pytest.mark.parametrize("scale", [1e-5, 1e100, 2.0**300, 1e300])
def test_closed_form_log_at_large_and_small_scales(scale):
    a = _case("random exp")
    expected = matrix_log(a) + math.log(scale) * EYE  # log(s A) = log(s) I + log A
    assert _rel(matrix_log(scale * a), expected) < 1e-14
    assert _rel(matrix_log(scale * a, method="general"), expected) < 1e-12


def _remainder_reference(a: torch.Tensor) -> torch.Tensor:
    """log A - (A - I) = sum_{k>=2} (-1)^(k+1) (A - I)^k / k at 40 digits (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    out = []
    with mpmath.workdps(40):
        for m in a.tolist():
            e = mpmath.matrix(m) - mpmath.eye(2)
            term, total = e, mpmath.zeros(2)
            for k in range(2, 200):
                term = term * e
                total += term * (mpmath.mpf((-1) ** (k + 1)) / k)
                if mpmath.mnorm(term, 1) < mpmath.mpf(10) ** -45:
                    break
            out.append([[float(total[i, j]) for j in range(2)] for i in range(2)])
    return torch.tensor(out, dtype=F64)


@pytest.mark.parametrize("h", [1e-1, 1e-2, 1e-4, 1e-6, 1e-8])
def test_remainder_near_the_identity_keeps_its_relative_accuracy(h):
    # A = I + h X: log A - (A - I) = O(h^2) is the column reported for residual layers
    a = EYE + h * torch.randn(N, 2, 2, generator=_gen(10), dtype=F64)
    ref = _remainder_reference(a)
    assert _rel(matrix_log_remainder(a), ref) < 1e-13
    assert _rel(matrix_log_remainder(a, method="general"), ref) < 1e-12
    # the logarithm itself, and the remainder formed from it, agree to rounding of log A
    assert _rel(matrix_log(a), ref + (a - EYE)) < 1e-15


def test_nan_exactly_where_no_real_logarithm_and_the_same_verdicts_as_eigenvalues():
    lam = _positive(11)
    negative = torch.stack([-lam, _positive(12)], 1)  # one negative eigenvalue
    both_negative = torch.stack([-lam, -_positive(12)], 1)
    singular = torch.stack([torch.zeros_like(lam), lam], 1)
    nil = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64)
    no_log = torch.cat(
        [
            _similar(torch.diag_embed(negative), 13),
            _similar(torch.diag_embed(both_negative), 14),
            _similar(torch.diag_embed(singular), 15),
            -lam[:, None, None] * EYE + nil,  # defective, negative eigenvalue (P J P^-1 rounds it
            # to a complex pair -lam +- i 1e-8, which has a real logarithm)
            torch.stack(
                [-EYE, torch.zeros(2, 2, dtype=F64), torch.diag(torch.tensor([1e-13, 1.0], dtype=F64))]
            ),
        ]
    )
    # near the edge of the rule (tol 1e-12): eigenvalues -1 +- i 1e-9, 2e-12, -1 +- i 1e-13
    edge = torch.tensor(
        [[[-1.0, -1e-9], [1e-9, -1.0]], [[2e-12, 0.0], [0.0, 1.0]], [[-1.0, -1e-13], [1e-13, -1.0]]],
        dtype=F64,
    )
    a = torch.cat([no_log, edge, _case("complex pair"), _case("jordan"), EYE + 1e-3 * no_log])
    ok = has_real_log(a)
    assert torch.equal(ok, has_real_log(a, method="general"))
    assert not ok[: len(no_log)].any() and ok[len(no_log) :].tolist() == [True, True, False] + [True] * (
        2 * N + len(no_log)
    )
    for fn in (matrix_log, matrix_log_remainder):
        out = fn(a)
        assert torch.equal(torch.isnan(out).all(-1).all(-1), ~ok)
        assert torch.isfinite(out[ok]).all()
    log = matrix_log(a[ok])
    assert _rel(torch.linalg.matrix_exp(log), a[ok]) < 1e-6  # eigenvalues -1 +- i 1e-9: ill-conditioned


def _same_rows(new: list[dict], old: list[dict], rel: float) -> None:
    assert len(new) == len(old)
    for r_new, r_old in zip(new, old, strict=True):
        assert r_new.keys() == r_old.keys()
        for key, value in r_new.items():
            if value is None or r_old[key] is None:
                assert value is None and r_old[key] is None, key
            else:
                assert value == pytest.approx(r_old[key], rel=rel, abs=1e-300), key


@pytest.mark.parametrize("kind", ["residual", "plain"])
def test_lie_table_of_a_trained_network_is_the_general_algorithms(kind):
    cfg = tiny_config(network=NetworkConfig(kind=kind, depth=3))
    data = make_dataset(cfg.dataset, seed=cfg.seed)
    model = train(cfg, data).model.double()
    _same_rows(lie_table(model, data.x), lie_table(model, data.x, method="general"), 1e-12)


def test_lie_table_of_a_deep_residual_network_is_the_general_algorithms():
    torch.manual_seed(0)
    model = build_network(NetworkConfig(kind="residual", depth=32), 2).double()
    x = torch.as_tensor(make_dataset(SpiralsConfig(n_samples=1000), seed=0).x)
    new, old = lie_table(model, x), lie_table(model, x, method="general")
    _same_rows(new, old, 1e-12)
    assert all(row["log_defined_fraction"] == 1.0 for row in new)
