"""`LayeredNetwork`: a network of any registered kind (riemexp.nets), of constant width w.

Input points (N, 2) are standardised with the fixed buffers `input_shift` and `input_scale`
(identity for the built-in toy sets) and padded with zeros to width w; that is layer 0.
Hidden layers l = 0 .. L-1 follow the kind's update (riemexp.nets.kind)

    x_{l+1} = a x_l + c x_{l-1} + beta sigma(W_l x_l + b_l),   x_{-1} = x_0,

e.g. plain x_{l+1} = sigma(W_l x_l + b_l), residual x_{l+1} = x_l + h sigma(W_l x_l + b_l), c2
x_{l+1} = 2 x_l - x_{l-1} + h^2 sigma(W_l x_l + b_l); a linear softmax head follows:
logits = V x_L + c, shape (N, C).

Weights are stored stacked: `weight` (L, w, w) and `bias` (L, w), so that geometry code reads
W_l and b_l without walking modules. The kind initialises them (seeded by the caller through
torch's global generator); the head has PyTorch's default nn.Linear initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from riemexp.activations import get_activation, get_log_derivative
from riemexp.config import INPUT_DIM, NetworkConfig
from riemexp.nets.kind import Coefficients, Kind, add, carry, scaled
from riemexp.nets.registry import get_kind


class LayeredNetwork(nn.Module):
    """A network of `depth` hidden layers of `width` units, updated by the rule of its kind."""

    # buffers (register_buffer in __init__), declared for type checkers
    input_shift: torch.Tensor
    input_scale: torch.Tensor

    def __init__(self, cfg: NetworkConfig, n_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.kind: Kind = get_kind(cfg.kind)
        self.width = cfg.width
        self.depth = cfg.depth
        self.h = float(cfg.step_size)
        self.coefficients: Coefficients = self.kind.coefficients(self.h)
        self.sigma, self.dsigma = get_activation(cfg.activation.value)
        self.log_dsigma = get_log_derivative(cfg.activation.value)  # log sigma', for log volumes
        weight, bias = self.kind.init(cfg.depth, cfg.width)
        self.weight = nn.Parameter(weight)  # (L, w, w)
        self.bias = nn.Parameter(bias)  # (L, w)
        self.head = nn.Linear(cfg.width, n_classes)
        # input standardisation x -> (x - input_shift) / input_scale, saved with the weights;
        # identity unless a dataset in its own units sets it (see riemexp.data.dataset)
        self.register_buffer("input_shift", torch.zeros(INPUT_DIM))
        self.register_buffer("input_scale", torch.ones(INPUT_DIM))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Input points (N, 2) -> layer-0 coordinates (N, w): standardise, then append w - 2 zeros."""
        x = (x - self.input_shift.to(x.dtype)) / self.input_scale.to(x.dtype)
        if x.shape[-1] == self.width:
            return x
        return nn.functional.pad(x, (0, self.width - x.shape[-1]))

    def _layers(self, x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the hidden layers from input points x (N, 2); return x_L and, if keep, all x_l."""
        x = prev = self.pad(x)
        coords = [x] if keep else []
        a, c, beta = self.coefficients.a, self.coefficients.c, self.coefficients.beta
        for W, b in zip(self.weight.unbind(0), self.bias.unbind(0)):
            kept = carry(x, prev, a, c)  # before the branch: the order of autograd's sums
            x, prev = add(kept, scaled(self.sigma(torch.addmm(b, x, W.T)), beta)), x
            if keep:
                coords.append(x)
        return x, coords

    def coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates of points x (N, 2) in every layer: (L+1, N, w); layer 0 is the padded input."""
        _, coords = self._layers(x, keep=True)
        return torch.stack(coords)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer x_L of points x (N, 2): (N, w)."""
        return self._layers(x, keep=False)[0]

    def float64_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The stacked layer weights W (L, w, w) and biases b (L, w) in float64, detached."""
        return self.weight.detach().to(torch.float64), self.bias.detach().to(torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of points x (N, 2): (N, C)."""
        return self.head(self.hidden(x))


def build_network(cfg: NetworkConfig, n_classes: int) -> LayeredNetwork:
    return LayeredNetwork(cfg, n_classes)


__all__ = ["INPUT_DIM", "LayeredNetwork", "build_network"]
