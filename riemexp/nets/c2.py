"""The second-order network (C2): x_{l+1} = 2 x_l - x_{l-1} + h^2 sigma(W_l x_l + b_l), x_{-1} = x_0.

Coefficients a = 2, c = -1, beta = h^2. Its state is s_l = (x_l, x_{l-1}), s_0 = (x_0, x_0), and the
layer Jacobian on the state is J_l = [[2I + h^2 D W_l, -I], [I, 0]] (2w x 2w, det = 1 always).
ODE (order 2): d2x/dt2 = sigma(W(t) x + b(t)), x(0) = x_0, dx/dt(0) = 0, by the central second
difference. Refined with the start x_{-1/k} = x_0 the scheme is of order 1 (riemexp.ode explains
why); `refine(..., corrected=True)` restores order 2 with a Taylor first step
x_1 = x_0 + delta^2/2 f_0 and the mean of both layers' forces at every layer boundary.
Initialisation: W_l ~ N(0, 1 / w), b_l ~ N(0, 0.1^2); each layer moves points by O(h^2).
Invertibility: certified for the data's map x_0 -> x_l by the recursion of `certify_layers`.
Geometry (derived by riemexp.geometry from the coefficients, as for every two-step kind): x_L depends
on x_l only along the data, so g_l, the data's metric in x_l coordinates, is Q_l^T Q_l with
Q_l = K_L K_l^{-1}, where K_l = dx_l/dx_0 is carried forward in closed form,
K_{-1} = K_0 = I, K_{l+1} = (2I + h^2 D W_l) K_l - K_{l-1} (riemexp.geometry.spectrum). The metric on
the state is `state_metrics`, and its restriction to a kept velocity `velocity_kept_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from riemexp.nets.kind import Coefficients, Kind, certificate_row

if TYPE_CHECKING:
    import torch


class C2(Kind):
    name = "c2"
    equation = "x_{l+1} = 2 x_l - x_{l-1} + h^2 sigma(W_l x_l + b_l)"
    two_step = True
    ode_order = 2

    def coefficients(self, h: float) -> Coefficients:
        return Coefficients(a=2.0, c=-1.0, beta=h * h)

    def ode_field(self, x: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return act

    def refine(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        sigma: Callable[[torch.Tensor], torch.Tensor],
        h: float,
        x0: torch.Tensor,
        k: int,
        corrected: bool = False,
    ) -> torch.Tensor:
        if not corrected:
            return super().refine(weight, bias, sigma, h, x0, k)
        import torch

        d2 = (h / k) ** 2
        x = prev = x0
        for layer, (Wl, bl) in enumerate(zip(weight, bias)):
            for j in range(k):
                force = sigma(torch.addmm(bl, x, Wl.T))  # (N, w)
                if j == 0 and layer > 0:  # the mean force across the layer boundary
                    force = 0.5 * (force + sigma(torch.addmm(bias[layer - 1], x, weight[layer - 1].T)))
                if j == 0 and layer == 0:  # Taylor start: x(delta) = x_0 + delta^2/2 f_0 + O(delta^3)
                    x, prev = x + 0.5 * d2 * force, x
                else:
                    x, prev = 2 * x - prev + d2 * force, x
        return x

    def certify_layers(
        self,
        norms: list[float],
        smallest: list[float],
        h: float,
        slope: float,
        min_slope: float,
        monotone: bool,
    ) -> list[dict[str, Any]]:
        """The map of the data x_0 -> x_{l+1} (the state map (x_l, x_{l-1}) -> (x_{l+1}, x_l) is a
        homeomorphism of R^2w for any weights, which says nothing about data starting at x_{-1} = x_0).
        With a_l = h^2 ||W_l||_2 max|sigma'|, the Lipschitz constants of x_l - x_0 and of the velocity
        x_{l+1} - x_l as functions of x_0 are at most e_l and u_l:

            e_0 = 0, u_{-1} = 0,   u_l = u_{l-1} + a_l (1 + e_l),   e_{l+1} = e_l + u_l;

        e_{l+1} < 1 proves x_0 -> x_{l+1} a bi-Lipschitz homeomorphism (identity plus a contraction),
        Lip <= 1 + e_{l+1}, inverse Lip <= 1 / (1 - e_{l+1}). Row l reports e_{l+1}."""
        rows, e, u = [], 0.0, 0.0
        for norm, low in zip(norms, smallest):
            u = u + h * h * norm * slope * (1 + e)
            e = e + u
            rows.append(certificate_row(norm, low, e, e < 1, 1 + e, 1 / (1 - e) if e < 1 else None))
        return rows

    def certify_network(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """x_0 -> x_L is the last row's map: certified when e_L < 1."""
        last = rows[-1]
        ok, e = last["certified_invertible"], last["contraction"]
        return {
            "certified_invertible": ok,
            "lipschitz_bound": last["lipschitz_bound"],
            "inverse_lipschitz_bound": last["inverse_lipschitz_bound"],
            "max_contraction": e,
            "certificate": f"x_0 -> x_L is a bi-Lipschitz homeomorphism (e_L = {e:.4g} < 1)"
            if ok
            else f"not certified: e_L = {e:.4g} >= 1 (the c2 bound on Lip(x_L - x_0))",
        }
