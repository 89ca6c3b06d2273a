"""The three kinds of layered network of paper.md §1, all of constant width w.

Input points (N, 2) are standardised with the fixed buffers `input_shift` and `input_scale`
(identity for the built-in toy sets) and padded with zeros to width w; that is layer 0.
Hidden layers, l = 0 .. L-1:

    plain    (C0):  x_{l+1} = sigma(W_l x_l + b_l)
    residual (C1):  x_{l+1} = x_l + h sigma(W_l x_l + b_l)
    c2       (C2):  x_{l+1} = 2 x_l - x_{l-1} + h^2 sigma(W_l x_l + b_l),  x_{-1} = x_0

followed by a linear softmax head: logits = V x_L + c, shape (N, C).

Weights are stored stacked: `weight` (L, w, w) and `bias` (L, w), so that geometry code
reads W_l and b_l without walking modules.

Initialisation (seeded by the caller through torch's global generator):
- plain: W_l = I + E with E_ij ~ N(0, 0.1^2), b_l = 0, so that each layer starts close to
  sigma applied to the identity map.
- residual and c2: W_l ~ N(0, 1 / w), b_l ~ N(0, 0.1^2); each layer moves points by
  O(h) (residual) or O(h^2) (c2), so the network starts near the identity.
- head: PyTorch's default nn.Linear initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from riemexp.activations import get_activation
from riemexp.config import INPUT_DIM, NetworkConfig, NetworkKind


class LayeredNetwork(nn.Module):
    """A plain, residual or c2 network of `depth` hidden layers of `width` units."""

    def __init__(self, cfg: NetworkConfig, n_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.kind = NetworkKind(cfg.kind)
        self.width = cfg.width
        self.depth = cfg.depth
        self.h = float(cfg.step_size)
        self.sigma, self.dsigma = get_activation(cfg.activation.value)
        w, L = cfg.width, cfg.depth
        if self.kind is NetworkKind.PLAIN:
            weight = torch.eye(w).repeat(L, 1, 1) + 0.1 * torch.randn(L, w, w)
            bias = torch.zeros(L, w)
        else:
            weight = torch.randn(L, w, w) / w**0.5
            bias = 0.1 * torch.randn(L, w)
        self.weight = nn.Parameter(weight)  # (L, w, w)
        self.bias = nn.Parameter(bias)  # (L, w)
        self.head = nn.Linear(w, n_classes)
        # input standardisation x -> (x - input_shift) / input_scale, saved with the weights;
        # identity unless a dataset in its own units sets it (see riemexp.datasets)
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
        x = self.pad(x)
        coords = [x] if keep else []
        weights, biases = self.weight.unbind(0), self.bias.unbind(0)
        if self.kind is NetworkKind.PLAIN:
            for W, b in zip(weights, biases):
                x = self.sigma(torch.addmm(b, x, W.T))
                if keep:
                    coords.append(x)
        elif self.kind is NetworkKind.RESIDUAL:
            for W, b in zip(weights, biases):
                x = x + self.h * self.sigma(torch.addmm(b, x, W.T))
                if keep:
                    coords.append(x)
        else:
            h2, prev = self.h**2, x
            for W, b in zip(weights, biases):
                x, prev = 2 * x - prev + h2 * self.sigma(torch.addmm(b, x, W.T)), x
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
