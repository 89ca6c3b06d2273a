"""Adam and SGD with momentum for K members at once, each with its own lr, weight decay and momentum.

The update of every member is torch.optim's (single-tensor implementation, the one used on the
cpu), operation for operation, on the members' parameter rows (K, P):

    Adam (betas 0.9, 0.999, eps 1e-8):  g <- g + wd p;  m <- lerp(m, g, 1 - beta1);
        v <- beta2 v + (1 - beta2) g^2;
        p <- p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    SGD:  g <- g + wd p;  b <- g at the first step, then momentum b + g;  p <- p - lr b
        (b = g when momentum = 0)

torch fuses some of these into one rounding (p - lr g is a fused multiply-add), so a per-member
value cannot simply be a tensor operand: each distinct value is applied with torch's own scalar
kernel, and each member takes the result of its own value (`per_member`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from riemexp.config import OptimConfig, OptimizerName

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, which riemexp uses


def per_member(values: Sequence[float], op: Callable[[float], torch.Tensor]) -> torch.Tensor:
    """Row k of op(values[k]) for every member k: op(v) (K, ...) is computed once per distinct value."""
    distinct = sorted(set(values))
    out = op(distinct[0])
    for v in distinct[1:]:
        mask = torch.tensor([x == v for x in values], device=out.device).view(-1, *[1] * (out.dim() - 1))
        out = torch.where(mask, op(v), out)
    return out


class StackedOptimizer:
    """Per-member hyperparameters and state of Adam or SGD over parameter rows (K, P)."""

    def __init__(self, configs: Sequence[OptimConfig], params: torch.Tensor) -> None:
        names = {c.name for c in configs}
        if len(names) != 1:
            raise ValueError(
                f"ensemble members must share one optimizer, got {sorted(n.value for n in names)}"
            )
        self.name = OptimizerName(configs[0].name)
        self.lr = [float(c.lr) for c in configs]
        self.weight_decay = [float(c.weight_decay) for c in configs]
        self.momentum = [float(getattr(c, "momentum", 0.0)) for c in configs]  # sgd's only
        self.steps = 0
        self.exp_avg: torch.Tensor | None = None  # Adam's first and second moments
        self.exp_avg_sq: torch.Tensor | None = None
        self.buffer: torch.Tensor | None = None  # SGD's momentum buffer
        if self.name is OptimizerName.ADAM:
            self.exp_avg = torch.zeros_like(params)
            self.exp_avg_sq = torch.zeros_like(params)

    def select(self, members: torch.Tensor) -> None:
        """Keep only the given member positions (in that order)."""
        idx = members.tolist()
        self.lr = [self.lr[i] for i in idx]
        self.weight_decay = [self.weight_decay[i] for i in idx]
        self.momentum = [self.momentum[i] for i in idx]
        for name in ("exp_avg", "exp_avg_sq", "buffer"):
            state = getattr(self, name)
            if state is not None:
                setattr(self, name, state.index_select(0, members.to(state.device)))

    def _decayed(self, params: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """g + wd p, member by member (g itself where wd = 0, as torch skips the step)."""
        if not any(self.weight_decay):
            return grad
        return per_member(self.weight_decay, lambda wd: grad if wd == 0 else grad.add(params, alpha=wd))

    def step(self, params: torch.Tensor, grad: torch.Tensor) -> None:
        """One update of params (K, P) in place from their gradient (K, P)."""
        self.steps += 1
        grad = self._decayed(params, grad)
        if self.name is OptimizerName.ADAM:
            assert self.exp_avg is not None and self.exp_avg_sq is not None
            self.exp_avg.lerp_(grad, 1 - BETA1)
            self.exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            bias_correction1 = 1 - BETA1**self.steps
            bias_correction2_sqrt = (1 - BETA2**self.steps) ** 0.5
            denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(EPS)
            exp_avg = self.exp_avg
            if len(set(self.lr)) == 1:
                params.addcdiv_(exp_avg, denom, value=-(self.lr[0] / bias_correction1))
            else:
                params.copy_(
                    per_member(
                        self.lr, lambda lr: params.addcdiv(exp_avg, denom, value=-(lr / bias_correction1))
                    )
                )
            return
        if any(self.momentum):
            buffer = self.buffer
            if buffer is None:
                buffer = self.buffer = grad.detach().clone()
            else:
                momentum = torch.tensor(self.momentum, dtype=grad.dtype, device=grad.device).view(-1, 1)
                buffer.mul_(momentum).add_(grad, alpha=1)
            if all(self.momentum):
                grad = buffer
            else:  # members without momentum step along their gradient, as torch does
                has_momentum = torch.tensor([m != 0 for m in self.momentum], device=grad.device).view(-1, 1)
                grad = torch.where(has_momentum, buffer, grad)
        step = grad
        if len(set(self.lr)) == 1:
            params.add_(step, alpha=-self.lr[0])
        else:
            params.copy_(per_member(self.lr, lambda lr: params.add(step, alpha=-lr)))
