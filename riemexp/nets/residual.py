"""The residual network (C1): x_{l+1} = x_l + h sigma(W_l x_l + b_l), forward Euler for an ODE.

Coefficients a = 1, c = 0, beta = h: the layer Jacobian is J_l = I + h D W_l, D = diag(sigma'(z_l)),
an element of GL(w) near the identity (the Lie table reports |log J_l - (J_l - I)| = O(h^2)).
ODE (order 1): dx/dt = sigma(W(t) x + b(t)) on [0, L h], W(t) = W_l on [l h, (l+1) h); refining a
layer into k sub-steps of h/k is forward Euler with step h/k, of global order 1.
Initialisation: W_l ~ N(0, 1 / w), b_l ~ N(0, 0.1^2); each layer moves points by O(h).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riemexp.nets.kind import Coefficients, Kind

if TYPE_CHECKING:
    import torch


class Residual(Kind):
    name = "residual"
    equation = "x_{l+1} = x_l + h sigma(W_l x_l + b_l)"
    ode_order = 1
    near_identity = True

    def coefficients(self, h: float) -> Coefficients:
        return Coefficients(a=1.0, c=0.0, beta=h)

    def ode_field(self, x: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return act
