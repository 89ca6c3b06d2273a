"""The plain network (C0, static): x_{l+1} = sigma(W_l x_l + b_l).

Coefficients a = 0, c = 0, beta = 1: the layer Jacobian is J_l = D W_l, D = diag(sigma'(z_l)). The
update does not depend on h and is no discretisation of an ODE (the ODE step says so).
Initialisation W_l = I + E, E_ij ~ N(0, 0.1^2), b_l = 0: each layer starts close to sigma applied
to the identity map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riemexp.nets.kind import Coefficients, Kind

if TYPE_CHECKING:
    import torch


class Plain(Kind):
    name = "plain"
    equation = "x_{l+1} = sigma(W_l x_l + b_l)"
    uses_step_size = False

    def coefficients(self, h: float) -> Coefficients:
        return Coefficients(a=0.0, c=0.0, beta=1.0)

    def init(self, depth: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        weight = torch.eye(width).repeat(depth, 1, 1) + 0.1 * torch.randn(depth, width, width)
        return weight, torch.zeros(depth, width)
