"""The ODE measurement of K networks at once, each member's report bit for bit `riemexp.ode.measure`'s.

An ensemble (riemexp.ensemble) trains K networks of one kind, width, depth and activation; each
has its own weights, step size h_k and input points x_k (N points each). `measure_members` runs
`riemexp.ode.measure` for all of them together, with a member axis in front of every tensor:

- refinement (`refine_members`): the kind's update at step h_k / k with a member axis: the layer
  map is `torch.baddbmm(b_l, x, W_l^T)` over the members ((K, N, w)), which rounds as the single
  run's `torch.addmm(b_l, x, W_l^T)`, and the coefficients are (K, 1, 1) tensors, which multiply
  as the numbers do (elementwise IEEE products);
- the reference solve (`solve_members`): torchdiffeq's dopri5 with its controller run per member:
  step size, error ratio (the max-norm over that member's N points and coordinates), accept or
  reject, next step, evaluation budget and dense output are each member's own; the stages, the
  error estimate and the interpolant are evaluated for the members still stepping in one tensor
  expression each, written as torchdiffeq writes them (`torchdiffeq/_impl/rk_common.py`,
  `misc.py`, `interp.py`; the sums over at most 7 stages along the last axis round as the single
  run's). A member that has finished its layer interval, or run out of its budget, waits (its rows
  are left out of the steps) until every member is done with the interval.

What is evaluated as the single run evaluates it, and why (each measured to round otherwise when
batched):

- the activation sigma (`_sigma_members`): torch evaluates a transcendental function with vector
  instructions on whole blocks of 16 numbers and with the scalar function on what is left of a
  piece, and the two differ in the last bit (sigmoid and softplus differed for N w = 1206 and
  185). It is batched over members whose N w is a multiple of 16, in slices of members that torch
  evaluates in one piece; otherwise member by member, on each member's own (N, w) tensor;
- the controller's numbers are Python floats, each operation the one torchdiffeq's 0-d tensors
  perform (`0.01 / d` on a tensor is torch's reciprocal, then a product: not Python's division);
  its powers (error_ratio^(1/5), (0.01 / d)^(1/5)) are taken on 0-d tensors as torchdiffeq takes
  them: torch's power of a (K,) tensor rounded 50 of 2000 numbers otherwise;
- the reductions of the convergence table (per-point norm, mean and max over points) run on each
  member's (N, w) slice, as in the single run. The controller's max-norms are maxima (exact in any
  order) and are taken over the member axis at once.

So each member's report equals `measure(models[k], xs[k], ...)` bit for bit: rows, order, gap,
spread, the solution's times, path, layer_index, evaluations, converged and stopped_layer
(tests/test_ode_batch.py). Its `seconds` are the batched call's time divided by K (and the
solution's `seconds` the batched reference solve's time divided by K): K members' seconds add up to
the time the call took.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from riemexp.nets.c2 import C2
from riemexp.nets.kind import Kind, add, carry, scaled
from riemexp.nets.network import LayeredNetwork
from riemexp.ode import (
    EVALUATIONS_PER_STEP,
    MAX_STEPS_PER_LAYER,
    OdeReport,
    OdeSolution,
    refinements,
    spread,
    table_order,
)


def _dopri5() -> tuple[Any, torch.Tensor]:
    """torchdiffeq's own Dormand-Prince tableau and midpoint weights (the numbers its dopri5 steps
    with), imported after riemexp.ode has loaded torchdiffeq (without scipy.integrate)."""
    from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU, DPS_C_MID

    return _DORMAND_PRINCE_SHAMPINE_TABLEAU, DPS_C_MID


_TABLEAU, _MID = _dopri5()

Sigma = Callable[[torch.Tensor], torch.Tensor]

#: dopri5's controller (torchdiffeq's defaults): safety, largest and smallest step factor, order
_SAFETY, _IFACTOR, _DFACTOR, _ORDER = 0.9, 10.0, 0.2, 5


def _check_members(models: Sequence[LayeredNetwork], xs: Sequence[torch.Tensor]) -> None:
    if not models:
        raise ValueError("measure_members needs at least one network, got none")
    if len(xs) != len(models):
        raise ValueError(f"one set of input points per network: got {len(models)} networks, {len(xs)} sets")
    first = models[0]
    if first.kind.ode_order is None:
        raise ValueError(
            f"the ODE view needs a network kind with an ODE (residual, c2, ...), got kind '{first.kind.name}'"
        )
    shape = (type(first.kind), first.width, first.depth, first.sigma)
    for k, model in enumerate(models):
        if (type(model.kind), model.width, model.depth, model.sigma) != shape:
            raise ValueError(
                f"the networks must share kind, width, depth and activation: network {k} is "
                f"{model.kind.name} width {model.width} depth {model.depth}, network 0 is "
                f"{first.kind.name} width {first.width} depth {first.depth} (or their activations differ)"
            )
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"every set of input points must have one shape, got {[tuple(x.shape) for x in xs]}")


#: torch's elementwise kernels take 2 vectors at a time, the rest one by one (aten Loops.h
#: `vectorized_loop`): 16 float64 numbers with the widest vectors (AVX-512), fewer with others
_VECTOR_BLOCK = 16
#: torch runs an elementwise kernel on fewer elements than this in one piece, on one thread
#: (at::internal::GRAIN_SIZE); above, in pieces, one per thread, cut where the thread count says
_GRAIN = 32768


def _sigma_members(sigma: Sigma, z: torch.Tensor) -> torch.Tensor:
    """sigma of z (K, N, w), each member's numbers rounded as sigma of its own (N, w) tensor.

    torch evaluates a transcendental function with vector instructions on whole blocks of
    `_VECTOR_BLOCK` elements and with the scalar function on what is left at the end of a piece,
    and the two differ in the last bit. Where a member's N w is a multiple of the block and a
    member's tensor is evaluated in one piece (N w < _GRAIN, or one thread), every number of it
    takes the vector path alone and within a slice of members in one piece (at most _GRAIN
    numbers, or all on one thread) alike: such slices are evaluated at once. Otherwise each member
    is evaluated on its own (N, w) slice, exactly as alone.
    """
    K, per = z.shape[0], z[0].numel()
    group = 1
    if per % _VECTOR_BLOCK == 0:
        group = K if torch.get_num_threads() == 1 else (_GRAIN - 1) // per
    if group <= 1:
        return torch.stack([sigma(zk) for zk in z.unbind(0)])
    if group >= K:
        return sigma(z)
    return torch.cat([sigma(z[i : i + group]) for i in range(0, K, group)])


def _layers(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W (K, L, w, w), b (K, L, w) -> per layer W_l (L, K, w, w) and b_l (L, K, 1, w), contiguous:
    `W_l[rows].transpose(1, 2)` lays each member's matrix out as the single run's W_l.T (a
    transposed view of a contiguous matrix), so that the products round alike."""
    return weight.transpose(0, 1).contiguous(), bias.transpose(0, 1).unsqueeze(2).contiguous()


@torch.no_grad()
def refine_members(
    kind: Kind,
    weight: torch.Tensor,
    bias: torch.Tensor,
    sigma: Sigma,
    hs: Sequence[float],
    x0: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """x_L of K networks with every layer split into k sub-steps of the update at step h_m / k.

    weight (K, L, w, w), bias (K, L, w), x0 (K, N, w), hs: K step sizes. Returns (K, N, w), member m
    equal bit for bit to `kind.refine(weight[m], bias[m], sigma, hs[m], x0[m], k)`. A kind whose own
    refinement is not the generic one, or whose coefficients a, c differ between the members, is
    refined member by member.
    """
    cos = [kind.coefficients(h / k) for h in hs]
    generic = type(kind).refine in (Kind.refine, C2.refine)  # C2's uncorrected refinement is the generic one
    if not generic or len({co.a for co in cos}) > 1 or len({co.c for co in cos}) > 1:
        return torch.stack([kind.refine(weight[m], bias[m], sigma, h, x0[m], k) for m, h in enumerate(hs)])
    a, c = cos[0].a, cos[0].c
    beta = torch.tensor([co.beta for co in cos], dtype=torch.float64).view(-1, 1, 1)
    weight_l, bias_l = _layers(weight, bias)
    x = prev = x0
    for Wl, bl in zip(weight_l, bias_l):
        Wt = Wl.transpose(1, 2)
        for _ in range(k):
            kept = carry(x, prev, a, c)
            x, prev = add(kept, scaled(_sigma_members(sigma, torch.baddbmm(bl, x, Wt)), beta)), x
    return x


def _nan_max(a: float, b: float) -> float:
    """torch.max of two 0-d tensors: NaN when either is."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def _nan_min(a: float, b: float) -> float:
    return math.nan if math.isnan(a) or math.isnan(b) else min(a, b)


def _pow(base: float, exponent: float | torch.Tensor) -> float:
    """base ** exponent as torchdiffeq takes it: on a float64 0-d tensor."""
    return float(torch.tensor(base, dtype=torch.float64) ** exponent)


_FIFTH = torch.tensor(_ORDER, dtype=torch.float64).reciprocal()  # _optimal_step_size's exponent


def _initial_step(d0: float, d1: float, df: float) -> float:
    """torchdiffeq's `_select_initial_step` (dopri5: order 4) from the max-norms d0 = |y0 / scale|,
    d1 = |f0 / scale| and df = |(f(y0 + h0 f0) - f0) / scale| (h0 as computed here)."""
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = abs(h0)
    d2 = abs(df / h0)
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = _nan_max(1e-6, h0 * 1e-3)
    else:
        # 0.01 / tensor is torch's __rtruediv__: reciprocal, then the product
        h1 = _pow((1.0 / max(d1, d2)) * 0.01, 1.0 / float(_ORDER - 1 + 1))
    h1 = abs(h1)
    return _nan_min(100 * h0, h1)


def _optimal_step(dt: float, ratio: float) -> float:
    """torchdiffeq's `_optimal_step_size` (then clamped to [0, inf), its min and max step)."""
    if ratio == 0:
        out = dt * _IFACTOR
    else:
        dfactor = 1.0 if ratio < 1 else _DFACTOR
        factor = _nan_min(_IFACTOR, _nan_max(_SAFETY / _pow(ratio, _FIFTH), dfactor))
        out = dt * factor
    return _clamp(out)


def _clamp(dt: float) -> float:
    """dt.clamp(min_step=0, max_step=inf)."""
    return dt if math.isnan(dt) else min(max(dt, 0.0), math.inf)


#: the field of one layer interval: f(s, rows) for the states s (K', N, D) of the members at `rows`
#: (indices into the K members; None: all of them, in order)
Field = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class _Solver:
    """dopri5 on one layer interval for K members (module docstring): each member's controller in
    Python numbers, the state tensors with a member axis in front. A step is computed for the
    members that step only (the rows of those not done with the interval and not stopped)."""

    def __init__(self, field: Field, rtol: float, atol: float, budget: int) -> None:
        self.field, self.rtol, self.atol, self.budget = field, rtol, atol, budget

    def integrate(
        self, y0: torch.Tensor, grids: list[list[float]], alive: list[bool], used: list[int]
    ) -> tuple[torch.Tensor, list[bool]]:
        """Integrate every alive member m from grids[m][0] through grids[m][1:] (dense output).

        used[m]: evaluations of the field so far in this interval (updated). Returns the solution at
        the grid times (K, n + 1, N, D) and, per member, whether it ran out of its budget here.
        """
        K = y0.shape[0]
        n = len(grids[0]) - 1
        members = [m for m in range(K) if alive[m]]
        out = torch.empty(K, n + 1, *y0.shape[1:], dtype=y0.dtype)
        out[:, 0] = y0
        y, f = y0.clone(), torch.zeros_like(y0)
        coeff = [y0.clone() for _ in range(5)]  # each member's rows are its own from its first step on
        # _before_integrate: f0 and _select_initial_step
        rows = _rows(members, K)
        ya = _take(y, rows)
        fa = self.field(ya, rows)
        _put(f, rows, fa)
        scale = self.atol + torch.abs(ya) * self.rtol
        d0 = _max_norms(ya / scale)
        d1 = _max_norms(fa / scale)
        h0s = [abs(1e-6 if a < 1e-5 or b < 1e-5 else 0.01 * a / b) for a, b in zip(d0, d1)]
        f1 = self.field(ya + _per_member(h0s) * fa, rows)
        d2 = _max_norms((f1 - fa) / scale)
        dts = [0.0] * K
        for j, m in enumerate(members):
            used[m] += 2
            dts[m] = _initial_step(d0[j], d1[j], d2[j])
        t0s = [g[0] for g in grids]
        t1s = list(t0s)
        nxt = [1] * K
        stopped = [False] * K
        running = list(members)
        while True:
            # dense output: every member whose next grid time its last accepted step reaches
            while True:
                ready = [m for m in running if nxt[m] <= n and not grids[m][nxt[m]] > t1s[m]]
                if not ready:
                    break
                xs = [(grids[m][nxt[m]] - t0s[m]) / (t1s[m] - t0s[m]) for m in ready]
                at = _rows(ready, K)
                value = _interp_evaluate([_take(c, at) for c in coeff], _per_member(xs))
                for j, m in enumerate(ready):
                    out[m, nxt[m]] = value[j]
                    nxt[m] += 1
            stepping = [m for m in running if nxt[m] <= n]
            if not stepping:
                break
            # _adaptive_step, per member: the step, its checks, the budget
            steps = {}
            for m in stepping:
                dt = _clamp(dts[m] if math.isfinite(dts[m]) else 0.0)
                if not t1s[m] + dt > t1s[m]:
                    raise AssertionError(f"underflow in dt {dt}")
                steps[m] = dt
            at = _rows(stepping, K)
            ys = _take(y, at)
            if not bool(torch.isfinite(ys).all()):
                raise AssertionError("non-finite values in state `y`")
            out_of_budget = [m for m in stepping if used[m] + EVALUATIONS_PER_STEP > self.budget]
            if out_of_budget:  # each would run out within this step: it stops here
                for m in out_of_budget:
                    stopped[m] = True
                    running.remove(m)
                continue
            dt_t = torch.tensor([steps[m] for m in stepping], dtype=torch.float64)
            y_new, f_new, error, k = _runge_kutta_step(self.field, at, ys, _take(f, at), dt_t)
            error_tol = self.atol + self.rtol * torch.max(ys.abs(), y_new.abs())
            ratios = _max_norms(error / error_tol)
            accepted = []
            for j, m in enumerate(stepping):
                used[m] += EVALUATIONS_PER_STEP
                dt, ratio = steps[m], abs(ratios[j])
                accept = ratio <= 1 or dt <= 0.0
                t0 = t1s[m]
                t0s[m], t1s[m] = (t0, t0 + dt) if accept else (t0, t0)
                dts[m] = _optimal_step(dt, ratio)
                if accept:
                    accepted.append(j)
            if accepted:
                fitted = _interp_fit(ys, y_new, k, dt_t.view(-1, 1, 1))
                sub = torch.tensor(accepted, dtype=torch.long)
                rows_accepted = torch.tensor([stepping[j] for j in accepted], dtype=torch.long)
                for c, new in zip(coeff, fitted):  # before y: fitted[0] may be y itself
                    c[rows_accepted] = new[sub]
                y[rows_accepted] = y_new[sub]
                f[rows_accepted] = f_new[sub]
        return out, stopped


def _rows(members: Sequence[int], K: int) -> torch.Tensor | None:
    """The members' rows as an index (None: all K rows, in order)."""
    return None if list(members) == list(range(K)) else torch.tensor(list(members), dtype=torch.long)


def _take(tensor: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return tensor if rows is None else tensor[rows]


def _put(tensor: torch.Tensor, rows: torch.Tensor | None, value: torch.Tensor) -> None:
    if rows is None:
        tensor.copy_(value)
    else:
        tensor[rows] = value


def _per_member(values: Sequence[float]) -> torch.Tensor:
    """K numbers as a (K, 1, 1) float64 tensor, to scale each member's (N, D) block."""
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)


def _max_norms(tensor: torch.Tensor) -> list[float]:
    """Each member's max-norm |.|_inf over its (N, D) block (riemexp.ode's norm, then .abs())."""
    return tensor.abs().amax(dim=(1, 2)).abs().tolist()


def _runge_kutta_step(
    field: Field, rows: torch.Tensor | None, y0: torch.Tensor, f0: torch.Tensor, dt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """torchdiffeq's `_runge_kutta_step` (dopri5) for the members at rows, with a step dt (K',) each:
    y1, f1, the error estimate and the stages k (K', N, D, 7)."""
    K = dt.shape[0]
    k = torch.empty(*f0.shape, len(_TABLEAU.alpha) + 1, dtype=y0.dtype)
    k[..., 0] = f0
    yi = y0
    for i, beta_i in enumerate(_TABLEAU.beta):
        weights = (beta_i[None, :] * dt[:, None]).view(K, 1, 1, i + 1)
        yi = y0 + torch.sum(k[..., : i + 1] * weights, dim=-1)
        k[..., i + 1] = field(yi, rows)
    # dopri5's last stage is the solution (c_sol = beta[-1], c_sol[-1] = 0): y1 = yi, as torchdiffeq
    error = torch.sum(k * (dt[:, None] * _TABLEAU.c_error[None, :]).view(K, 1, 1, -1), dim=-1)
    return yi, k[..., -1], error, k


def _interp_fit(y0: torch.Tensor, y1: torch.Tensor, k: torch.Tensor, dt: torch.Tensor) -> list[torch.Tensor]:
    """torchdiffeq's `RKAdaptiveStepsizeODESolver._interp_fit` and `_interp_fit`, dt (K, 1, 1)."""
    y_mid = y0 + torch.sum(k * (dt[..., None] * _MID), dim=-1)
    f0 = k[..., 0]
    f1 = k[..., -1]
    a = 2 * dt * (f1 - f0) - 8 * (y1 + y0) + 16 * y_mid
    b = dt * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * y_mid
    c = dt * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * y_mid
    d = dt * f0
    e = y0
    return [e, d, c, b, a]


def _interp_evaluate(coefficients: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchdiffeq's `_interp_evaluate` at the relative times x (K, 1, 1) of each member's step."""
    total = coefficients[0] + x * coefficients[1]
    x_power = x
    for coefficient in coefficients[2:]:
        x_power = x_power * x
        total = total + x_power * coefficient
    return total


@torch.no_grad()
def solve_members(
    models: Sequence[LayeredNetwork],
    x0: torch.Tensor,
    rtol: float,
    atol: float,
    n_dense: int = 1,
    max_steps_per_layer: int = MAX_STEPS_PER_LAYER,
) -> list[OdeSolution]:
    """`riemexp.ode.reference_solve` of K networks of one kind, width, depth and activation from
    x0 (K, N, w), one layer interval at a time; member m's solution bit for bit
    `reference_solve(models[m], x0[m], ...)`'s (its `seconds`: the whole solve's divided by K)."""
    if max_steps_per_layer < 1:
        raise ValueError(f"max_steps_per_layer must be >= 1, got {max_steps_per_layer}")
    if n_dense < 1:
        raise ValueError(f"n_dense must be >= 1, got {n_dense}")
    first = models[0]
    K, w = len(models), first.width
    kind, sigma, field_of = first.kind, first.sigma, first.kind.ode_field
    second_order = kind.ode_order == 2
    weights = [model.float64_weights() for model in models]
    weight_l, bias_l = _layers(torch.stack([W for W, _ in weights]), torch.stack([b for _, b in weights]))
    hs = [model.h for model in models]
    state = x0.to(torch.float64)
    if second_order:
        state = torch.cat([state, torch.zeros_like(state)], dim=2)  # (K, N, 2w): (x, v)
    start = time.perf_counter()
    budget = EVALUATIONS_PER_STEP * max_steps_per_layer + 1
    used, total = [0] * K, [0] * K
    alive = [True] * K
    stopped_layer: list[int | None] = [None] * K
    zero = torch.zeros(1, dtype=torch.float64)
    times: list[list[torch.Tensor]] = [[zero] for _ in range(K)]
    pieces: list[list[torch.Tensor]] = [[state[m][None]] for m in range(K)]
    layer_index: list[list[int]] = [[0] for _ in range(K)]
    for layer, (Wl, bl) in enumerate(zip(weight_l, bias_l)):
        if not any(alive):
            break

        def branch(x: torch.Tensor, rows: torch.Tensor | None, Wl: torch.Tensor = Wl, bl=bl) -> torch.Tensor:
            """F(x) of the members at rows, given their positions x (K', N, w)."""
            z = torch.baddbmm(_take(bl, rows), x, _take(Wl, rows).transpose(1, 2))
            return field_of(x, _sigma_members(sigma, z))

        def system(s: torch.Tensor, rows: torch.Tensor | None, branch: Field = branch) -> torch.Tensor:
            """(x, v)' = (v, F(x)) of the members at rows, s = (x, v): (K', N, 2w)."""
            return torch.cat([s[:, :, w:], branch(s[:, :, :w], rows)], dim=2)

        field: Field = system if second_order else branch

        grids = [torch.linspace(layer * h, (layer + 1) * h, n_dense + 1, dtype=torch.float64) for h in hs]
        for m in range(K):
            if alive[m]:
                total[m] += used[m]
                used[m] = 0
        out, ran_out = _Solver(field, rtol, atol, budget).integrate(
            state, [g.tolist() for g in grids], alive, used
        )
        for m in range(K):
            if not alive[m]:
                continue
            if ran_out[m]:
                alive[m] = False
                stopped_layer[m] = layer
                used[m] = budget
                continue
            times[m].append(grids[m][1:])
            pieces[m].append(out[m, 1:])
            layer_index[m].append(layer_index[m][-1] + n_dense)
        state = out[:, -1]
    seconds = (time.perf_counter() - start) / K
    return [
        OdeSolution(
            torch.cat(times[m]),
            torch.cat(pieces[m])[..., :w],
            layer_index[m],
            seconds,
            evaluations=total[m] + min(used[m], budget),
            converged=stopped_layer[m] is None,
            stopped_layer=stopped_layer[m],
        )
        for m in range(K)
    ]


def measure_members(
    models: Sequence[LayeredNetwork],
    xs: Sequence[torch.Tensor],
    max_refinement: int,
    rtol: float,
    atol: float,
    n_dense: int = 8,
    max_steps_per_layer: int = MAX_STEPS_PER_LAYER,
) -> list[OdeReport]:
    """`riemexp.ode.measure(models[m], xs[m], ...)` for K networks of one kind, width, depth and
    activation at once (input points xs[m]: (N, 2) each, one N for all). Report m equals the single
    measurement's bit for bit but for `seconds` (the call's time divided by K; the module docstring)."""
    start = time.perf_counter()
    _check_members(models, xs)
    with torch.no_grad():
        x0 = torch.stack([model.pad(x.to(torch.float64)) for model, x in zip(models, xs)])
    solutions = solve_members(
        models, x0, rtol, atol, n_dense=n_dense, max_steps_per_layer=max_steps_per_layer
    )
    done = [m for m, s in enumerate(solutions) if s.converged]
    tables: dict[int, list[dict[str, Any]]] = {m: [] for m in done}
    if done:
        first = models[0]
        weights = [models[m].float64_weights() for m in done]
        weight, bias = torch.stack([W for W, _ in weights]), torch.stack([b for _, b in weights])
        hs = [models[m].h for m in done]
        reference = torch.stack([solutions[m].end for m in done])
        for k in refinements(max_refinement):
            diff = refine_members(first.kind, weight, bias, first.sigma, hs, x0[done], k) - reference
            for j, m in enumerate(done):
                _add_row(tables[m], k, hs[j], diff[j].norm(dim=1))
    seconds = (time.perf_counter() - start) / len(models)
    reports = []
    for m, solution in enumerate(solutions):
        if not solution.converged:
            reports.append(OdeReport([], None, None, None, solution, seconds))
            continue
        rows = tables[m]
        size = spread(solution.end)
        gap = rows[0]["error_mean"] / size if size > 0 else math.nan
        reports.append(OdeReport(rows, table_order(rows), gap, size, solution, seconds))
    return reports


def _add_row(rows: list[dict[str, Any]], k: int, h: float, err: torch.Tensor) -> None:
    """The row of `riemexp.ode.convergence_table` for refinement k, from the errors err (N,)."""
    row: dict[str, Any] = {"k": k, "substep": h / k}
    row.update(error_mean=float(err.mean()), error_max=float(err.max()))
    prev = rows[-1]["error_mean"] if rows else None
    row["observed_order"] = math.log2(prev / row["error_mean"]) if prev and row["error_mean"] > 0 else None
    rows.append(row)


__all__ = ["measure_members", "refine_members", "solve_members"]
