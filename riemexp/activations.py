"""Activation functions sigma and their derivatives sigma' (docs/science.md §3).

Looked up by name in `ACTIVATIONS`: name -> (sigma, sigma'). Both act elementwise on
tensors of any shape and dtype; sigma' is written in closed form so that the geometry
engine needs no autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]


def _dtanh(z: torch.Tensor) -> torch.Tensor:
    return 1 - torch.tanh(z) ** 2


def _dsigmoid(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


def _drelu(z: torch.Tensor) -> torch.Tensor:
    # the 0/1 step; at z = 0 we take 0, as autograd does for relu
    return (z > 0).to(z.dtype)


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def _didentity(z: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(z)


ACTIVATIONS: dict[str, tuple[Fn, Fn]] = {
    "tanh": (torch.tanh, _dtanh),
    "sigmoid": (torch.sigmoid, _dsigmoid),
    "relu": (torch.relu, _drelu),
    "softplus": (torch.nn.functional.softplus, torch.sigmoid),
    "identity": (_identity, _didentity),
}


def get_activation(name: str) -> tuple[Fn, Fn]:
    """Return (sigma, sigma') for `name`."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f'Invalid activation "{name}". Must be one of {{{", ".join(ACTIVATIONS)}}}'
        ) from None
