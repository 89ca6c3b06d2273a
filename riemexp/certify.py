"""Certified invertibility: which layers are homeomorphisms, with bi-Lipschitz bounds, from the weights alone.

A layer is a true change of coordinates only if it is invertible. Whether it is follows from the
weights and the activation's slope bound s = max |sigma'| (tanh, relu, softplus, identity: 1;
sigmoid: 1/4), with no sampling of points. Each network kind states its own certificate
(`Kind.certify_layers`, `Kind.certify_network` in riemexp/nets/: residual.py, plain.py, c2.py; a
kind that states none is "not certified"); this module computes the singular values, runs the
kind's certificate, keeps network.lipschitz in training and inverts certified layers. The maths:

residual  x_{l+1} = x_l + h sigma(W_l x_l + b_l). The branch G_l(x) = h sigma(W_l x + b_l) has
          Lipschitz constant at most

              c_l = h ||W_l||_2 s.

          c_l < 1 proves the layer is a bi-Lipschitz homeomorphism of R^w: y = x + G_l(x) has the
          unique solution x = y - G_l(x), the fixed point of a contraction (`invert_residual_layer`
          finds it), and

              |F(x) - F(x')| <= (1 + c_l) |x - x'|,   |F^-1(y) - F^-1(y')| <= |y - y'| / (1 - c_l).

          Also det J_l > 0 everywhere: J_l = I + h D W_l with ||h D W_l||_2 <= c_l < 1. The network
          x_0 -> x_L is then a homeomorphism with Lip <= prod (1 + c_l), inverse Lip <=
          prod 1 / (1 - c_l). c_l >= 1 certifies nothing (the layer may still be invertible).
plain     x_{l+1} = sigma(W_l x_l + b_l). The layer is injective, a homeomorphism of R^w onto its
          image (the box sigma(R)^w, e.g. (-1, 1)^w for tanh, not all of R^w) exactly when W_l is
          invertible (smallest singular value > 0) and sigma is strictly monotone (tanh, sigmoid,
          softplus, identity; not relu). Lip <= ||W_l||_2 s; the inverse is Lipschitz on the image
          only for sigma = identity (1 / sigma_min(W_l)); a saturating sigma has sigma' -> 0, so no
          bound exists (reported empty).
c2        x_{l+1} = 2 x_l - x_{l-1} + h^2 sigma(W_l x_l + b_l), x_{-1} = x_0. On the state
          (x_l, x_{l-1}) every layer is a homeomorphism of R^2w whatever the weights (its inverse is
          explicit: x_{l-1} = 2 x_l - x_{l+1} + h^2 sigma(W_l x_l + b_l)); that says nothing about
          the data, which start on the diagonal x_{-1} = x_0. What is certified is the map of the
          data x_0 -> x_l. With a_l = h^2 ||W_l||_2 s, the Lipschitz constants of x_l - x_0 and of
          the discrete velocity x_{l+1} - x_l (as functions of x_0) are bounded by

              e_0 = 0,  u_{-1} = 0,   u_l = u_{l-1} + a_l (1 + e_l),   e_{l+1} = e_l + u_l,

          and e_l < 1 proves x_0 -> x_l a bi-Lipschitz homeomorphism of R^w (identity plus a
          contraction), Lip <= 1 + e_l, inverse Lip <= 1 / (1 - e_l). The c2 rows of the table
          report e_{l+1} for the map x_0 -> x_{l+1}, and the network's certificate is e_L < 1.
          Since e_L grows like (L h)^2 / 2 * max ||W|| s, deep c2 networks are rarely certified.

Inputs enter through an affine bijection (standardisation) and zero padding, so a certified
network restricted to the input plane is an embedding of the plane in R^w.

`network.lipschitz = c` (0 < c < 1, residual networks) keeps c_l <= c during training:
`project_lipschitz` rescales every W_l after each optimiser step (and once at initialisation) to
W_l min(1, c / (h s ||W_l||_2)), with the exact spectral norm (w is tiny), checked in float64 so
that the saved weights satisfy the bound to the last bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from riemexp.nets.network import LayeredNetwork

F64 = torch.float64

#: max |sigma'(z)| over z
MAX_SLOPE = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "softplus": 1.0, "identity": 1.0}
#: inf sigma' over R (a plain layer's inverse is Lipschitz only where it is > 0)
MIN_SLOPE = {"tanh": 0.0, "sigmoid": 0.0, "relu": 0.0, "softplus": 0.0, "identity": 1.0}
#: sigma strictly increasing (relu is constant on z < 0)
STRICTLY_MONOTONE = {"tanh": True, "sigmoid": True, "relu": False, "softplus": True, "identity": True}

#: columns added to tables/layers.csv; row l describes the map l -> l+1 (empty in the last row)
CERTIFICATE_COLUMNS = (
    "spectral_norm",
    "min_singular_value",
    "contraction",
    "certified_invertible",
    "lipschitz_bound",
    "inverse_lipschitz_bound",
)


def max_slope(activation: str) -> float:
    """max |sigma'| of the activation named `activation`."""
    try:
        return MAX_SLOPE[activation]
    except KeyError:
        raise ValueError(
            f'Invalid activation "{activation}". Must be one of {{{", ".join(MAX_SLOPE)}}}'
        ) from None


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values of every W_l, descending, float64: weight (L, w, w) -> (L, w)."""
    return torch.linalg.svdvals(weight.detach().to(F64))


def layer_certificates(kind: str, weight: torch.Tensor, h: float, activation: str) -> list[dict[str, Any]]:
    """One row per layer l = 0 .. L-1 with `CERTIFICATE_COLUMNS`: the kind's `certify_layers`.

    weight (L, w, w). spectral_norm ||W_l||_2, min_singular_value sigma_min(W_l); contraction c_l
    (residual), e_{l+1} (c2: of the map x_0 -> x_{l+1}), empty (plain); certified_invertible: the
    layer (c2: x_0 -> x_{l+1}) is proven a homeomorphism (plain: onto its image); the Lipschitz
    bounds of that map and of its inverse (empty when none is proven).
    """
    from riemexp.nets.registry import get_kind

    sv = singular_values(weight)  # (L, w)
    return get_kind(kind).certify_layers(
        sv[:, 0].tolist(),
        sv[:, -1].tolist(),
        float(h),
        max_slope(activation),
        MIN_SLOPE[activation],
        STRICTLY_MONOTONE[activation],
    )


def network_certificate(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The certificate of the whole map x_0 -> x_L (the kind's `certify_network`), for metrics.json.

    certified_invertible: every layer certified (c2: e_L < 1); lipschitz_bound and
    inverse_lipschitz_bound of x_0 -> x_L (products over layers; c2: the last row's; None when
    not proven); max_contraction: max_l c_l (residual) or e_L (c2), None for plain;
    certificate: one line saying what is proven.
    """
    from riemexp.nets.registry import get_kind

    return get_kind(kind).certify_network(rows)


def certify_model(model: LayeredNetwork) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(per-layer rows, network certificate) of a network's saved weights."""
    kind, activation = model.kind.name, model.cfg.activation.value
    rows = layer_certificates(kind, model.weight, model.h, activation)
    return rows, network_certificate(kind, rows)


def with_certificate(rows: list[dict[str, Any]], model: LayeredNetwork) -> list[dict[str, Any]]:
    """The layers-table rows (l = 0 .. L) with `CERTIFICATE_COLUMNS` of the map l -> l+1 (empty at l = L)."""
    layers, _ = certify_model(model)
    empty = dict.fromkeys(CERTIFICATE_COLUMNS)
    return [{**row, **(layers[i] if i < len(layers) else empty)} for i, row in enumerate(rows)]


# --------------------------------------------------------------------------- the constraint


@torch.no_grad()
def project_lipschitz(weight: torch.Tensor, bound: float, factor: float, activation: str) -> None:
    """Rescale every W_l in place so that c_l = factor ||W_l||_2 max|sigma'| <= bound holds exactly.

    factor: the kind's `contraction_factor(h)` (residual: h). weight (L, w, w), any float dtype.
    W_l with c_l > bound becomes W_l * bound / c_l, computed in float64 and rounded to weight's
    dtype; a rounding that lands above the bound is shrunk by a few ulps until the float64 check
    passes. Layers already within the bound are left untouched.
    """
    limit = bound / (factor * max_slope(activation))  # the largest allowed ||W_l||_2
    for layer in range(weight.shape[0]):
        w64 = weight[layer].to(F64)
        norm = float(torch.linalg.matrix_norm(w64, ord=2))
        if norm <= limit:
            continue
        scale = limit / norm
        for _ in range(64):
            scaled = (w64 * scale).to(weight.dtype)
            if float(torch.linalg.matrix_norm(scaled.to(F64), ord=2)) <= limit:
                break
            scale *= 1 - 4 * torch.finfo(weight.dtype).eps
        weight[layer] = scaled


def constrain(model: Any) -> None:
    """Project a network with network.lipschitz = c back onto c_l <= c (`project_lipschitz`); else nothing."""
    bound = getattr(model.cfg, "lipschitz", None)
    if bound is not None:
        factor = model.kind.contraction_factor(model.h)
        project_lipschitz(model.weight, bound, factor, model.cfg.activation.value)


# --------------------------------------------------------------------------- inversion


@torch.no_grad()
def invert_residual_layer(
    weight: torch.Tensor,
    bias: torch.Tensor,
    h: float,
    sigma: Any,
    y: torch.Tensor,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> tuple[torch.Tensor, int]:
    """x with x + h sigma(W x + b) = y, by the fixed-point iteration x <- y - h sigma(W x + b).

    weight (w, w), bias (w,), y (N, w); float64. Converges geometrically with rate c = h ||W||_2
    max|sigma'| when c < 1 (Banach). Returns (x (N, w), iterations); ValueError when the largest
    step is still above tol after max_iter iterations (c >= 1 can fail to converge).
    """
    x = y.clone()
    for it in range(1, max_iter + 1):
        nxt = y - h * sigma(torch.addmm(bias, x, weight.T))
        step = float((nxt - x).abs().max()) if len(x) else 0.0
        x = nxt
        if step <= tol:
            return x, it
    raise ValueError(f"fixed-point inversion did not converge to {tol:g} in {max_iter} iterations")


@torch.no_grad()
def invert_residual_network(model: LayeredNetwork, xl: torch.Tensor, tol: float = 1e-10) -> torch.Tensor:
    """Layer-0 coordinates (N, w) of last-hidden-layer points xl (N, w) of a residual network, float64."""
    weight, bias = model.float64_weights()
    x = xl.to(F64)
    for layer in reversed(range(model.depth)):
        x, _ = invert_residual_layer(weight[layer], bias[layer], model.h, model.sigma, x, tol)
    return x


__all__ = [
    "CERTIFICATE_COLUMNS",
    "constrain",
    "certify_model",
    "invert_residual_layer",
    "invert_residual_network",
    "layer_certificates",
    "max_slope",
    "network_certificate",
    "project_lipschitz",
    "with_certificate",
]
