"""What a network kind is: one update rule, and everything riemexp derives from it.

Every kind updates the hidden coordinates x_l (l = 0 .. L-1, width w) by

    x_{l+1} = a x_l + c x_{l-1} + beta sigma(W_l x_l + b_l),        x_{-1} = x_0,

with scalar coefficients (a, c, beta) that may depend on the step size h (`Kind.coefficients`).
A kind is one small class in riemexp/nets/ (plain.py, residual.py, c2.py) plus one line in
`riemexp.nets.registry`; it states its coefficients, its state convention, its initialisation and
its ODE. riemexp derives the rest in closed form, for every kind alike:

- the update a training step evaluates, ((a x_l) + (c x_{l-1})) + beta sigma(z_l), with a zero
  coefficient left out, a unit one not multiplied and c = -1 subtracted (`carry`, `scaled`, `add`):
  the batched ensemble evaluates the same expression (`step_grad` is its backward, in the order
  autograd accumulates it), so that its members round as single runs do;
- the layer Jacobian, with D = diag(sigma'(W_l x_l + b_l)),

      one-step kinds (c = 0):  J_l = a I + beta D W_l                          (w x w)
      two-step kinds (c != 0): J_l = [[a I + beta D W_l, c I], [I, 0]]          (2w x 2w)

  acting on the state s_l = (x_l, x_{l-1}) for two-step kinds (`Kind.two_step`); riemexp.geometry
  uses the position block A_l = a I + beta D W_l and the coefficient c;
- the ODE: a kind whose update with step delta is a consistent scheme for dx/dt = F(x) (order 1) or
  d2x/dt2 = F(x) (order 2) names the order and F (`ode_order`, `ode_field`); refinement splits every
  layer into k sub-steps of the kind's own update with step h/k and the same weights (`refine`).

Torch-free at import, so that checking a config (which names a kind) loads no torch: the methods
take tensors and use their methods; `init` imports torch when it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

#: a coefficient: a number, or (in a batched ensemble) a tensor of one value per member
Scale = Any


@dataclass(frozen=True)
class Coefficients:
    """x_{l+1} = a x_l + c x_{l-1} + beta sigma(W_l x_l + b_l)."""

    a: float
    c: float
    beta: float


class Kind:
    """One kind of layered network; subclass it, set the class attributes and `coefficients`.

    name            the value of `network.kind`
    equation        the update, for docs, titles and messages
    two_step        True when c != 0: the state is (x_l, x_{l-1}) and the Jacobian 2w x 2w
    uses_step_size  False when the update does not depend on h (tables and titles leave h out)
    ode_order       1 (dx/dt = F), 2 (d2x/dt2 = F) or None (no ODE: the ODE step says so)
    near_identity   True when J_l = I + O(h): the Lie table reports |log J_l - (J_l - I)|
    """

    name: ClassVar[str]
    equation: ClassVar[str]
    two_step: ClassVar[bool] = False
    uses_step_size: ClassVar[bool] = True
    ode_order: ClassVar[int | None] = None
    near_identity: ClassVar[bool] = False

    def coefficients(self, h: float) -> Coefficients:
        """(a, c, beta) of the update at step size h."""
        raise NotImplementedError

    # ------------------------------------------------------------------ initialisation

    def init(self, depth: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial weights W (L, w, w) and biases b (L, w) from torch's global generator.

        Default: W_l ~ N(0, 1 / w), b_l ~ N(0, 0.1^2), so that a layer moves points by
        O(beta) and a network whose beta is small starts near the identity.
        """
        import torch

        weight = torch.randn(depth, width, width) / width**0.5
        bias = 0.1 * torch.randn(depth, width)
        return weight, bias

    # ------------------------------------------------------------------ the ODE

    def ode_field(self, x: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """F of the kind's ODE at x (N, w), given act = sigma(W x + b) (N, w); only when ode_order is set."""
        raise NotImplementedError(f"network kind '{self.name}' has no ODE")

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
        """x_L of the network with every layer split into k sub-steps of the update at step h/k.

        weight (L, w, w), bias (L, w), x0 (N, w) layer-0 coordinates; returns (N, w). Two-step
        kinds carry x_{-1} = x_0 at the start only (the discrete velocity starts at 0 at every k).
        k = 1 is the network's own forward pass. `corrected` is for kinds that define a
        higher-order start (c2); others refuse it.
        """
        import torch

        if corrected:
            raise ValueError(f"network kind '{self.name}' has no corrected refinement")
        co = self.coefficients(h / k)
        x = prev = x0
        for Wl, bl in zip(weight, bias):
            for _ in range(k):
                kept = carry(x, prev, co.a, co.c)
                x, prev = add(kept, scaled(sigma(torch.addmm(bl, x, Wl.T)), co.beta)), x
        return x

    # ------------------------------------------------------------------ invertibility (riemexp.certify)

    def contraction_factor(self, h: float) -> float | None:
        """f such that c_l = f ||W_l||_2 max|sigma'| bounds the Lipschitz constant of the layer's
        branch, for a kind whose layer is x + branch: c_l < 1 then proves the layer a bi-Lipschitz
        homeomorphism of R^w, and network.lipschitz = c keeps c_l <= c. None: no such bound (and
        network.lipschitz is refused)."""
        return None

    def certify_layers(
        self,
        norms: list[float],
        smallest: list[float],
        h: float,
        slope: float,
        min_slope: float,
        monotone: bool,
    ) -> list[dict[str, Any]]:
        """What the weights prove about each layer's invertibility: one `certificate_row` per layer.

        norms ||W_l||_2 and smallest sigma_min(W_l), l = 0 .. L-1; slope = max|sigma'|, min_slope =
        inf sigma' over R, monotone: sigma strictly increasing. Default: nothing proven (a kind says
        what its update allows; riemexp.certify and the built-in kinds' modules give the maths).
        """
        return [certificate_row(n, s, None, False, None, None) for n, s in zip(norms, smallest)]

    def certify_network(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The map x_0 -> x_L from `certify_layers` rows: certified when every layer is, its Lipschitz
        bounds the products of the layers' (inverse: None unless every layer has one)."""
        ok = all(r["certified_invertible"] for r in rows)
        lips, invs = [r["lipschitz_bound"] for r in rows], [r["inverse_lipschitz_bound"] for r in rows]
        contractions = [r["contraction"] for r in rows if r["contraction"] is not None]
        worst = max(contractions) if contractions else None
        bad = sum(not r["certified_invertible"] for r in rows)
        if ok and worst is not None:
            text = f"every layer is a bi-Lipschitz homeomorphism of R^w (max c_l = {worst:.4g} < 1)"
        elif ok:
            text = "every layer is injective: a homeomorphism onto its image"
        else:
            text = f"not certified: {bad} of {len(rows)} layers are not proven invertible" + (
                f" (max c_l = {worst:.4g})" if worst is not None else ""
            )
        return {
            "certified_invertible": ok,
            "lipschitz_bound": math.prod(lips) if all(v is not None for v in lips) else None,
            "inverse_lipschitz_bound": math.prod(invs) if ok and all(v is not None for v in invs) else None,
            "max_contraction": worst,
            "certificate": text,
        }

    def __repr__(self) -> str:
        return f"<network kind '{self.name}': {self.equation}>"


def certificate_row(
    norm: float,
    smallest: float,
    contraction: float | None,
    ok: bool,
    lip: float | None,
    inverse: float | None,
) -> dict[str, Any]:
    """One layer's row of the invertibility certificate (the columns riemexp.certify adds to layers.csv)."""
    return {
        "spectral_norm": norm,
        "min_singular_value": smallest,
        "contraction": contraction,
        "certified_invertible": bool(ok),
        "lipschitz_bound": lip,
        "inverse_lipschitz_bound": inverse,
    }


def scaled(act: torch.Tensor, beta: Scale) -> torch.Tensor:
    """beta sigma(z): the branch of the update (no multiplication when beta is the number 1)."""
    return act if _is(beta, 1.0) else act * beta


def carry(x: torch.Tensor, prev: torch.Tensor, a: Scale, c: Scale) -> torch.Tensor | None:
    """The part of the update carried over from earlier layers, (a x_l) + (c x_{l-1}); None when a = c = 0.

    A coefficient that is the number 0 leaves its term out, 1 does not multiply, c = -1 subtracts;
    a and c may be tensors (one value per ensemble member), then they multiply. Every kind's forward
    pass evaluates x_{l+1} = add(carry(x_l, x_{l-1}, a, c), beta sigma(W_l x_l + b_l)), the carried
    part first: autograd adds a tensor's gradients in the reverse order of the operations that used
    it, so this order fixes the rounding of a training step (and `step_grad` follows it).
    """
    if _is(a, 0.0):
        out = None
    else:
        out = x if _is(a, 1.0) else x * a
    if not _is(c, 0.0):
        if out is None:
            out = -prev if _is(c, -1.0) else prev * c
        else:
            out = out - prev if _is(c, -1.0) else out + prev * c
    return out


def add(carried: torch.Tensor | None, branch: torch.Tensor) -> torch.Tensor:
    """x_{l+1} = carried + branch (the branch alone when nothing is carried)."""
    return branch if carried is None else carried + branch


def step_grad(
    g_next: torch.Tensor, g_through: torch.Tensor, g_after: torch.Tensor | None, a: Scale, c: Scale
) -> torch.Tensor:
    """dL/dx_l from g_next = dL/dx_{l+1}, g_through = W_l^T dL/dz_l and g_after = dL/dx_{l+2} (None
    at the last layer), in the order autograd accumulates the gradient of the update (`carry`):
    ((c g_after) + g_through) + (a g_next)."""
    out = g_through
    if g_after is not None and not _is(c, 0.0):
        out = (-g_after if _is(c, -1.0) else g_after * c) + out
    if not _is(a, 0.0):
        out = out + (g_next if _is(a, 1.0) else g_next * a)
    return out


def _is(value: Scale, number: float) -> bool:
    return isinstance(value, (int, float)) and value == number


__all__ = ["Coefficients", "Kind", "Scale", "add", "carry", "certificate_row", "scaled", "step_grad"]
