"""The second-order network (C2): x_{l+1} = 2 x_l - x_{l-1} + h^2 sigma(W_l x_l + b_l), x_{-1} = x_0.

Coefficients a = 2, c = -1, beta = h^2. Its state is s_l = (x_l, x_{l-1}), s_0 = (x_0, x_0), and the
layer Jacobian on the state is J_l = [[2I + h^2 D W_l, -I], [I, 0]] (2w x 2w, det = 1 always).
ODE (order 2): d2x/dt2 = sigma(W(t) x + b(t)), x(0) = x_0, dx/dt(0) = 0, by the central second
difference. Refined with the start x_{-1/k} = x_0 the scheme is of order 1 (riemexp.ode explains
why); `refine(..., corrected=True)` restores order 2 with a Taylor first step
x_1 = x_0 + delta^2/2 f_0 and the mean of both layers' forces at every layer boundary.
Initialisation: W_l ~ N(0, 1 / w), b_l ~ N(0, 0.1^2); each layer moves points by O(h^2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from riemexp.nets.kind import Coefficients, Kind

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
