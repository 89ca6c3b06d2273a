"""The plain network (C0, static): x_{l+1} = sigma(W_l x_l + b_l).

Coefficients a = 0, c = 0, beta = 1: the layer Jacobian is J_l = D W_l, D = diag(sigma'(z_l)). The
update does not depend on h and is no discretisation of an ODE (the ODE step says so).
Initialisation W_l = I + E, E_ij ~ N(0, 0.1^2), b_l = 0: each layer starts close to sigma applied
to the identity map.
Invertibility: injective (onto its image) exactly when W_l is invertible and sigma strictly monotone
(`certify_layers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riemexp.nets.kind import Coefficients, Kind, certificate_row

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

    def certify_layers(
        self,
        norms: list[float],
        smallest: list[float],
        h: float,
        slope: float,
        min_slope: float,
        monotone: bool,
    ) -> list[dict[str, Any]]:
        """Injective exactly when W_l is invertible (sigma_min > 1e-12 sigma_max) and sigma strictly
        monotone: a homeomorphism of R^w onto its image, the box sigma(R)^w, not onto R^w. Lip <=
        ||W_l||_2 max|sigma'|; inverse Lip 1 / (sigma_min(W_l) inf sigma') only where inf sigma' > 0
        (identity); a saturating sigma has none."""
        rows = []
        for norm, low in zip(norms, smallest):
            ok = monotone and low > 1e-12 * norm
            inverse = 1 / (low * min_slope) if ok and min_slope > 0 else None
            rows.append(certificate_row(norm, low, None, ok, norm * slope, inverse))
        return rows
