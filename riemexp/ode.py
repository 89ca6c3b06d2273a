"""Networks as ODEs, measured: refinement, reference flow, gap, order. Pure maths (no files).

A network kind with an ODE (riemexp.nets.kind: `ode_order`, `ode_field`) is a finite-difference
scheme for it on t in [0, T], T = L h, with piecewise-constant weights W(t) = W_l, b(t) = b_l for
t in [l h, (l+1) h). A residual network of L layers and step h is the forward-Euler scheme, a c2
network the central second difference:

    residual:  dx/dt     = sigma(W(t) x + b(t)),   x(0) = x_0                 (order 1)
    c2:        d2x/dt2   = sigma(W(t) x + b(t)),   x(0) = x_0,  dx/dt(0) = 0   (order 2)

x_0 is the network's layer-0 coordinates (standardised, zero-padded input: `model.pad`).

Refinement. Every layer's step is split into k sub-steps of size delta = h / k with the same
weights, each the kind's own update at step delta: `refine(model, x0, k)` (k = 1 is the network
itself). The last-layer coordinates converge to the ODE's x(T) as k grows:

- residual: forward Euler, global error O(delta): order 1.
- c2: x_{n+1} = 2 x_n - x_{n-1} + delta^2 sigma(W x_n + b). The network starts with
  x_{-1} = x_0 (zero discrete velocity); the refined scheme carries this over as
  x_{-1/k} = x_0, i.e. the initial *discrete velocity* (x_0 - x_{-1}) / delta stays 0 at every k,
  the discrete form of dx/dt(0) = 0. The expected order is 1, not the 2 of the central difference
  on smooth problems. Derivation: for the exact solution the second difference is the hat-weighted
  average of x'' over [t - delta, t + delta],
      x(t+delta) - 2 x(t) + x(t-delta) = int_{-delta}^{delta} (delta - |s|) x''(t+s) ds.
  (a) First step: the scheme gives x_1 = x_0 + delta^2 f_0, the exact x(delta) = x_0 + delta^2/2 f_0
      + O(delta^3): a local error delta^2/2 f_0, i.e. a velocity error delta/2 f_0 that persists.
  (b) At each layer boundary t = l h the force jumps from f_{l-1} to f_l; the exact hat-average is
      delta^2 (f_{l-1} + f_l)/2 + O(delta^3) but the scheme uses delta^2 f_l: again a velocity error
      delta/2 (f_l - f_{l-1}), L - 1 of them, a number that does not grow with k.
  Each velocity error of O(delta) gives an O(delta) error in x(T): order 1. With both corrected
  (Taylor start x_1 = x_0 + delta^2/2 f_0 and the mean force at boundaries, `corrected=True`) the
  scheme is of order 2 again; the tests check both numbers.

Reference. `reference_solve` integrates the ODE with torchdiffeq's adaptive dopri5 (rtol, atol
from `cfg.ode`, max-norm error control over all points and coordinates), one layer interval
at a time so that no step straddles a jump of W(t), in float64, vectorised over points. A
second-order ODE (c2) is solved as the first-order system (x, v)' = (v, F(x)), v(0) = 0. Its dense
output (the solver's interpolant at `n_dense` times per layer) draws the continuous trajectories.

Measures (`measure`, written by riemexp.analyses.ode): for k = 1, 2, 4, ..., cfg.ode.max_refinement, the error
e_i(k) = |x_L^(k)(x_i) - x(T; x_i)| (Euclidean, last-layer coordinates) over all N data points
(train and test), its mean and max; the convergence order fitted as the least-squares slope of
log(mean error) against log(delta) over the finer half of the k (k = 8 .. 64 by default: k = 1 of a
trained network is often outside the asymptotic regime); and the ODE gap = mean e_i(1) / spread,
where the spread is the RMS distance of the reference endpoints x(T; x_i) to their mean,
sqrt(mean_i |x_i(T) - mean|^2): the trained network's distance from its own ODE, in units of the
size of the data at the last layer. All N points are used: the reference solve of a default run
(1000 points, 10 layers) takes about 0.2 s.
Kinds without an ODE (plain: no step size) have none: the ODE step says `ode_applicable: false`.
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from riemexp.nets.network import LayeredNetwork


def _import_odeint() -> Callable[..., Any]:
    """torchdiffeq's `odeint`, without loading scipy.integrate on the way (0.4 s of every run).

    torchdiffeq imports scipy.integrate.solve_ivp at import time for its "scipy_solver" method
    only, which riemexp never uses. While torchdiffeq loads, scipy.integrate is a stand-in whose
    solve_ivp imports the real one when called, so that method still works; the stand-in is
    removed right after, and `import scipy.integrate` anywhere later loads the real module.
    """
    if "torchdiffeq" in sys.modules or "scipy.integrate" in sys.modules:
        from torchdiffeq import odeint

        return odeint

    def solve_ivp(*args: Any, **kwargs: Any) -> Any:
        from scipy.integrate import solve_ivp as real

        return real(*args, **kwargs)

    stand_in = types.ModuleType("scipy.integrate")
    stand_in.solve_ivp = solve_ivp  # type: ignore[attr-defined]
    sys.modules["scipy.integrate"] = stand_in
    try:
        from torchdiffeq import odeint
    finally:
        if sys.modules.get("scipy.integrate") is stand_in:
            del sys.modules["scipy.integrate"]
    return odeint


odeint = _import_odeint()


def no_ode_note(model: LayeredNetwork) -> str:
    """Why a network of this kind has no ODE analysis."""
    kind = model.kind
    no_h = "" if kind.uses_step_size else "have no step size and "
    return f"{kind.name} networks ({kind.equation}) {no_h}are no discretisation of an ODE"


def _check_kind(model: LayeredNetwork) -> None:
    if model.kind.ode_order is None:
        raise ValueError(
            f"the ODE view needs a network kind with an ODE (residual, c2, ...), got kind '{model.kind.name}'"
        )


@torch.no_grad()
def refine(model: LayeredNetwork, x0: torch.Tensor, k: int, corrected: bool = False) -> torch.Tensor:
    """Last-layer coordinates with every layer split into k sub-steps of h/k, same weights.

    x0: layer-0 coordinates (N, w), float64. Returns x_L^(k): (N, w). The kind's own refinement
    (`Kind.refine`): k sub-steps of its update at step delta = h/k per layer, e.g.
    residual: x <- x + delta sigma(W_l x + b_l), k times per layer (forward Euler).
    c2: x_{n+1} = 2 x_n - x_{n-1} + delta^2 sigma(W_l x_n + b_l), x_{-1} = x_0 at every k.
    `corrected` (c2 only) replaces the two first-order error sources of the module docstring:
    first step x_1 = x_0 + delta^2/2 f_0, and at layer boundaries the mean of both layers' forces.
    k = 1 with corrected=False is exactly the network's forward pass.
    """
    _check_kind(model)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    W, b = model.float64_weights()
    return model.kind.refine(W, b, model.sigma, model.h, x0.to(torch.float64), k, corrected=corrected)


@dataclass
class OdeSolution:
    """The reference flow of a network's ODE at `times` (M,) = n_dense points per layer interval.

    path: (M, N, w) positions x(t) (for c2 the velocity is dropped); path[-1] is x(T).
    layer_index: (L+1,) indices into `times` of t = l h, l = 0 .. L.
    """

    times: torch.Tensor
    path: torch.Tensor
    layer_index: list[int]
    seconds: float
    #: evaluations of the vector field the solve used
    evaluations: int = 0
    #: False when the solve ran out of its budget: path then ends where it stopped, at the start
    #: of layer interval `stopped_layer`, and is no reference for anything
    converged: bool = True
    stopped_layer: int | None = None

    @property
    def end(self) -> torch.Tensor:
        """x(T): (N, w)."""
        return self.path[-1]


_SOLVER = "dopri5"
#: evaluations of the vector field per dopri5 step (7 stages, the last reused by the next step)
EVALUATIONS_PER_STEP = 6
#: the default budget of a reference solve, in solver steps per layer interval
#: (`ode.max_steps_per_layer`); trained networks take 10-40 at the default tolerances
MAX_STEPS_PER_LAYER = 1000


class _OutOfBudget(Exception):
    """Raised inside the vector field when the solve has used its budget of evaluations."""


def _max_norm(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.abs().max()


@torch.no_grad()
def reference_solve(
    model: LayeredNetwork,
    x0: torch.Tensor,
    rtol: float,
    atol: float,
    n_dense: int = 1,
    max_steps_per_layer: int = MAX_STEPS_PER_LAYER,
) -> OdeSolution:
    """Solve the network's ODE from x0 (N, w) with torchdiffeq dopri5, one layer interval at a time.

    Order 1: dx/dt = F(x) on [l h, (l+1) h] (residual: F = sigma(W_l x + b_l)); order 2:
    d2x/dt2 = F(x), dx/dt(0) = 0, as the system (x, v) (c2). Positions at n_dense evenly spaced
    times per interval plus t = 0 (dense output of the solver's interpolant) are returned in an OdeSolution.

    Budget: at most max_steps_per_layer solver steps in each layer interval (EVALUATIONS_PER_STEP
    evaluations of the vector field each, rejected steps included). A field too stiff for the
    tolerances (huge weights) would otherwise shrink the step without end; the solve stops
    instead and returns `converged=False` with the path up to the layer where it stopped.
    """
    if max_steps_per_layer < 1:
        raise ValueError(f"max_steps_per_layer must be >= 1, got {max_steps_per_layer}")
    _check_kind(model)
    if n_dense < 1:
        raise ValueError(f"n_dense must be >= 1, got {n_dense}")
    W, b = model.float64_weights()
    h, sigma, w, field_of = model.h, model.sigma, model.width, model.kind.ode_field
    second_order = model.kind.ode_order == 2
    state = x0.to(torch.float64)
    if second_order:
        state = torch.cat([state, torch.zeros_like(state)], dim=1)  # (N, 2w): (x, v)
    start = time.perf_counter()
    budget = EVALUATIONS_PER_STEP * max_steps_per_layer + 1
    used = [0, 0]  # evaluations in this layer interval, in all before it

    def spend() -> None:
        used[0] += 1
        if used[0] > budget:
            raise _OutOfBudget

    times, pieces, layer_index = [torch.zeros(1, dtype=torch.float64)], [state[None]], [0]
    stopped = None
    for layer, (Wl, bl) in enumerate(zip(W, b)):
        if second_order:

            def field(t: torch.Tensor, s: torch.Tensor, Wl=Wl, bl=bl) -> torch.Tensor:
                spend()
                x = s[:, :w]
                return torch.cat([s[:, w:], field_of(x, sigma(torch.addmm(bl, x, Wl.T)))], dim=1)
        else:

            def field(t: torch.Tensor, s: torch.Tensor, Wl=Wl, bl=bl) -> torch.Tensor:
                spend()
                return field_of(s, sigma(torch.addmm(bl, s, Wl.T)))

        t = torch.linspace(layer * h, (layer + 1) * h, n_dense + 1, dtype=torch.float64)
        used[1] += used[0]
        used[0] = 0
        try:
            out = odeint(field, state, t, rtol=rtol, atol=atol, method=_SOLVER, options={"norm": _max_norm})
        except _OutOfBudget:
            stopped = layer
            break
        state = out[-1]
        times.append(t[1:])
        pieces.append(out[1:])
        layer_index.append(layer_index[-1] + n_dense)
    path = torch.cat(pieces)[..., :w]  # (M, N, w)
    return OdeSolution(
        torch.cat(times),
        path,
        layer_index,
        time.perf_counter() - start,
        evaluations=used[1] + min(used[0], budget),
        converged=stopped is None,
        stopped_layer=stopped,
    )


def spread(points: torch.Tensor) -> float:
    """RMS distance of points (N, w) to their mean: sqrt(mean_i |p_i - mean|^2)."""
    return float(((points - points.mean(0)) ** 2).sum(1).mean().sqrt())


def fit_order(substeps: list[float], errors: list[float]) -> float | None:
    """Least-squares slope of log(error) against log(substep); None if fewer than 2 usable points."""
    pairs = [(math.log(s), math.log(e)) for s, e in zip(substeps, errors) if e > 0 and math.isfinite(e)]
    if len(pairs) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pairs)
    return sxy / sxx


def table_order(rows: list[dict[str, Any]]) -> float | None:
    """The fitted convergence order of ode.csv rows: `fit_order` over the finer half of the rows
    (k >= sqrt(max k) when there are 4 or more rows, else all rows), where the error is asymptotic."""
    fine = rows[len(rows) // 2 :] if len(rows) >= 4 else rows
    return fit_order([r["substep"] for r in fine], [r["error_mean"] for r in fine])


def refinements(max_refinement: int) -> list[int]:
    """k = 1, 2, 4, ..., max_refinement (a power of two)."""
    return [2**i for i in range(int(math.log2(max_refinement)) + 1)]


def convergence_table(
    model: LayeredNetwork, x0: torch.Tensor, reference: torch.Tensor, max_refinement: int, corrected=False
) -> list[dict[str, Any]]:
    """Rows of ode.csv: k, substep h/k, mean and max over points of |x_L^(k) - x(T)|, and the
    observed order log2(error_mean(k/2) / error_mean(k)) (None for the first row).

    x0: (N, w) layer-0 coordinates; reference: (N, w) the reference x(T).
    """
    rows: list[dict[str, Any]] = []
    for k in refinements(max_refinement):
        err = (refine(model, x0, k, corrected=corrected) - reference).norm(dim=1)  # (N,)
        row: dict[str, Any] = {
            "k": k,
            "substep": model.h / k,
            "error_mean": float(err.mean()),
            "error_max": float(err.max()),
        }
        prev = rows[-1]["error_mean"] if rows else None
        row["observed_order"] = (
            math.log2(prev / row["error_mean"]) if prev and row["error_mean"] > 0 else None
        )
        rows.append(row)
    return rows


@dataclass
class OdeReport:
    """Everything `measure` found: table rows, fitted order, gap, spread, the reference flow.

    When the reference solve ran out of its budget (`solution.converged` False) there is no
    reference: rows is empty and order, gap and spread are None.
    """

    rows: list[dict[str, Any]]
    order: float | None
    gap: float | None
    spread: float | None
    solution: OdeSolution
    seconds: float

    @property
    def converged(self) -> bool:
        return self.solution.converged


def measure(
    model: LayeredNetwork,
    x: torch.Tensor,
    max_refinement: int,
    rtol: float,
    atol: float,
    n_dense: int = 8,
    max_steps_per_layer: int = MAX_STEPS_PER_LAYER,
) -> OdeReport:
    """Refinement study of a network whose kind has an ODE, on input points x (N, 2)."""
    start = time.perf_counter()
    with torch.no_grad():
        x0 = model.pad(x.to(torch.float64))
    solution = reference_solve(
        model, x0, rtol, atol, n_dense=n_dense, max_steps_per_layer=max_steps_per_layer
    )
    if not solution.converged:
        return OdeReport([], None, None, None, solution, time.perf_counter() - start)
    rows = convergence_table(model, x0, solution.end, max_refinement)
    order = table_order(rows)
    size = spread(solution.end)
    gap = rows[0]["error_mean"] / size if size > 0 else math.nan
    return OdeReport(rows, order, gap, size, solution, time.perf_counter() - start)


def unconverged_note(solution: OdeSolution, max_steps_per_layer: int, depth: int) -> str:
    """Why an ODE analysis has no numbers: the reference solve ran out of its budget."""
    return (
        f"the reference solve did not converge: layer interval {solution.stopped_layer} (of {depth}) "
        f"needed more than ode.max_steps_per_layer={max_steps_per_layer} solver steps; the ODE is too "
        "stiff for ode.rtol/atol there (very large weights?). No errors, order or gap are reported; "
        "raise ode.max_steps_per_layer or loosen ode.rtol/atol"
    )


__all__ = [
    "OdeReport",
    "OdeSolution",
    "convergence_table",
    "fit_order",
    "measure",
    "no_ode_note",
    "refine",
    "reference_solve",
    "refinements",
    "table_order",
    "spread",
    "unconverged_note",
]
