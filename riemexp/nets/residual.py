"""The residual network (C1): x_{l+1} = x_l + h sigma(W_l x_l + b_l), forward Euler for an ODE.

Coefficients a = 1, c = 0, beta = h: the layer Jacobian is J_l = I + h D W_l, D = diag(sigma'(z_l)),
an element of GL(w) near the identity (the Lie table reports |log J_l - (J_l - I)| = O(h^2)).
ODE (order 1): dx/dt = sigma(W(t) x + b(t)) on [0, L h], W(t) = W_l on [l h, (l+1) h); refining a
layer into k sub-steps of h/k is forward Euler with step h/k, of global order 1.
Initialisation: W_l ~ N(0, 1 / w), b_l ~ N(0, 0.1^2); each layer moves points by O(h).
Invertibility: c_l = h ||W_l||_2 max|sigma'| < 1 proves the layer a bi-Lipschitz homeomorphism of R^w
(`certify_layers`; network.lipschitz keeps c_l <= c in training).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riemexp.nets.kind import Coefficients, Kind, certificate_row

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

    def contraction_factor(self, h: float) -> float | None:
        return h

    def certify_layers(
        self,
        norms: list[float],
        smallest: list[float],
        h: float,
        slope: float,
        min_slope: float,
        monotone: bool,
    ) -> list[dict[str, Any]]:
        """c_l = h ||W_l||_2 max|sigma'| bounds the Lipschitz constant of the branch h sigma(W_l x + b_l);
        c_l < 1 proves the layer a bi-Lipschitz homeomorphism of R^w (x = y - h sigma(W_l x + b_l) is a
        contraction): Lip <= 1 + c_l, inverse Lip <= 1 / (1 - c_l), det J_l > 0 everywhere."""
        rows = []
        for norm, low in zip(norms, smallest):
            c = h * norm * slope
            rows.append(certificate_row(norm, low, c, c < 1, 1 + c, 1 / (1 - c) if c < 1 else None))
        return rows
