"""Activation functions sigma, their derivatives sigma' and log sigma' (docs/science.md §3).

Looked up by name in `ACTIVATIONS`: name -> (sigma, sigma'), and in `LOG_DERIVATIVES`:
name -> log sigma'. All act elementwise on tensors of any shape and dtype; sigma' is written in
closed form so that the geometry engine needs no autograd.

Saturation. The textbook forms underflow long before sigma' does: 1 - tanh(z)^2 is exactly 0 for
|z| > 19.1 in float64 (tanh rounds to 1) and s (1 - s) for the sigmoid is 0 for z > 36.7, although
sigma' > 0 everywhere, so a saturated but invertible layer would look singular. We use forms that
stay positive while sigma' is representable, and log sigma' that never underflows:

    tanh      sigma' = sech^2 z = 4 e^{-2|z|} / (1 + e^{-2|z|})^2      (> 0 for |z| < 372)
              log sigma' = log 4 - 2|z| - 2 log(1 + e^{-2|z|})
    sigmoid   sigma' = s(z) s(-z)                                       (> 0 for |z| < 745)
              log sigma' = log s(z) + log s(-z)
    softplus  sigma' = s(z),  log sigma' = log s(z)
    relu      sigma' = 1 for z > 0, else 0 (autograd's choice at z = 0);  log sigma' = 0 or -inf
    identity  sigma' = 1,     log sigma' = 0
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional

Fn = Callable[[torch.Tensor], torch.Tensor]

_LOG4 = math.log(4.0)


def _dtanh(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(-2.0 * z.abs())
    return 4.0 * e / (1.0 + e) ** 2


def _log_dtanh(z: torch.Tensor) -> torch.Tensor:
    a = z.abs()
    return _LOG4 - 2.0 * a - 2.0 * torch.log1p(torch.exp(-2.0 * a))


def _dsigmoid(z: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(z) * torch.sigmoid(-z)


def _log_dsigmoid(z: torch.Tensor) -> torch.Tensor:
    return functional.logsigmoid(z) + functional.logsigmoid(-z)


def _drelu(z: torch.Tensor) -> torch.Tensor:
    # the 0/1 step; at z = 0 we take 0, as autograd does for relu
    return (z > 0).to(z.dtype)


def _log_drelu(z: torch.Tensor) -> torch.Tensor:
    return torch.where(z > 0, 0.0, -math.inf).to(z.dtype)


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def _didentity(z: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(z)


def _log_didentity(z: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(z)


ACTIVATIONS: dict[str, tuple[Fn, Fn]] = {
    "tanh": (torch.tanh, _dtanh),
    "sigmoid": (torch.sigmoid, _dsigmoid),
    "relu": (torch.relu, _drelu),
    "softplus": (functional.softplus, torch.sigmoid),
    "identity": (_identity, _didentity),
}

#: name -> log sigma' (-inf exactly where sigma' = 0, i.e. relu for z <= 0)
LOG_DERIVATIVES: dict[str, Fn] = {
    "tanh": _log_dtanh,
    "sigmoid": _log_dsigmoid,
    "relu": _log_drelu,
    "softplus": functional.logsigmoid,
    "identity": _log_didentity,
}


def _unknown(name: str) -> ValueError:
    return ValueError(f'Invalid activation "{name}". Must be one of {{{", ".join(ACTIVATIONS)}}}')


def get_activation(name: str) -> tuple[Fn, Fn]:
    """Return (sigma, sigma') for `name`."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise _unknown(name) from None


def get_log_derivative(name: str) -> Fn:
    """Return log sigma' for `name` (see the module docstring)."""
    try:
        return LOG_DERIVATIVES[name]
    except KeyError:
        raise _unknown(name) from None
