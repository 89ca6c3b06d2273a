"""Cross-entropy of K members at once, with each member's value exactly as torch computes it alone.

A single run's loss is `cross_entropy(logits, y)` = nll_loss(log_softmax(logits), y), mean over
the N points. Its log_softmax is a per-row kernel (the same for any number of rows), but the mean
is a float32 sum whose order is torch's: a cascade of partial sums. `mean_nll` reproduces that
order for every member, so the ensemble's losses are bit for bit those of the single runs (and
so are the divergence checks and the history that depend on them).

torch's order (aten nll_loss, reduction mean, no class weights): partial sums P_0..P_7 start at
0; point b (b = 0 .. N-1) does P_0 -= lp_b, then for j = 0, 1, ..., 6 while b is a multiple of
S^(j+1), P_{j+1} += P_j and P_j = 0, where S = 2^max(4, ceil(log2 N) / 8) (S = 16 for any
realistic N); the loss is (((0 + P_0) + P_1) + ... + P_7) / N.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LEVELS = 8  # torch's number of cascade levels
#: below this many members, `mean_nll` calls torch's nll_loss once per member (cheaper)
LOOP_BELOW = 24


def _level(values: torch.Tensor, step: int, subtract: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One cascade level over values (K, M): the sums it hands up (K, F) and what it keeps (K,).

    The level hands its running sum up after the values at positions 0, step, 2 step, ...,
    so the groups are {0}, {1 .. step}, {step + 1 .. 2 step}, ...; the values after the last
    hand-over stay in the level. Each group is summed left to right in float32, from 0.
    """
    k, m = values.shape
    handed = (m - 1) // step + 1  # hand-overs at 0, step, ..., (handed - 1) step
    rows = -(-(m + step - 1) // step)  # groups, the unfinished one included
    # row r holds group r: pad step - 1 zeros in front (group 0 is one value) and zeros at the end;
    # adding or subtracting a zero leaves a float unchanged, so the padding changes no sum
    padded = values.new_zeros(k, rows * step)
    padded[:, step - 1 : step - 1 + m] = values
    groups = padded.view(k, rows, step)
    acc = values.new_zeros(k, rows)
    for t in range(step):
        acc = acc - groups[:, :, t] if subtract else acc + groups[:, :, t]
    kept = acc[:, handed] if rows > handed else values.new_zeros(k)
    return acc[:, :handed], kept


def cascade_mean(lp_target: torch.Tensor) -> torch.Tensor:
    """-mean of lp_target (K, N) over N, float32, summed in torch's nll_loss order: (K,)."""
    k, n = lp_target.shape
    step = 1 << max(4, math.ceil(math.log2(n)) // LEVELS) if n > 1 else 16
    partials = []
    values, subtract = lp_target, True
    for _ in range(LEVELS - 1):
        if values.shape[1] == 1 and not subtract:  # one value: handed up whole (0 + v)
            partials.append(values.new_zeros(k))
            values = values + 0.0
            continue
        values, kept = _level(values, step, subtract)
        partials.append(kept)
        subtract = False
    top = values.new_zeros(k)
    for t in range(values.shape[1]):  # the last level keeps everything
        top = top + values[:, t]
    partials.append(top)
    total = lp_target.new_zeros(k)
    for p in partials:
        total = total + p
    return total / n


def mean_nll(log_probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy: log_probs (K, N, C) from log_softmax, labels y (K, N) -> (K,).

    Equal, bit for bit, to `nll_loss(log_probs[k], y[k])` for every member k.
    """
    k = log_probs.shape[0]
    if k < LOOP_BELOW:
        return torch.stack([F.nll_loss(log_probs[i], y[i]) for i in range(k)])
    return cascade_mean(log_probs.gather(-1, y.unsqueeze(-1)).squeeze(-1))


def mean_nll_backward(log_probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(mean_nll)/d(logits) of every member, as autograd computes it for one: (K, N, C).

    nll_loss puts -1/N (float32) at each point's label; log_softmax's backward kernel does the rest.
    """
    n = log_probs.shape[1]
    value = -(torch.ones((), dtype=log_probs.dtype, device=log_probs.device) / n)
    grad = torch.zeros_like(log_probs).scatter_(-1, y.unsqueeze(-1), value.expand(*y.shape, 1))
    return torch._log_softmax_backward_data(grad, log_probs, -1, log_probs.dtype)


def predictions(logits: torch.Tensor, finite: bool = False) -> torch.Tensor:
    """argmax of logits (K, N, C) over the classes: (K, N); the first of equal maxima, NaN as the largest.

    finite: the caller knows every logit is finite (then NaN needs no care).
    """
    if logits.shape[-1] != 2:
        return logits.argmax(-1)
    first, second = logits[..., 0], logits[..., 1]  # two classes: a comparison is much cheaper than argmax
    if finite:
        return second > first
    return ((second > first) | (second.isnan() & ~first.isnan())).long()


def accuracy(
    logits: torch.Tensor, y: torch.Tensor, finite: bool = False, is_one: torch.Tensor | None = None
) -> torch.Tensor:
    """Each member's fraction of points whose largest logit is their label: (K, N, C), (K, N) -> (K,).

    finite: as for `predictions` (e.g. every member's loss on these logits is finite, which a
    non-finite logit would not allow). is_one: y == 1 (bool), for two classes (saves a pass).
    The count is exact, so count / N is the single run's mean of 0s and 1s in float64, bit for bit.
    """
    if finite and is_one is not None and logits.shape[-1] == 2:
        hits = (logits[..., 1] > logits[..., 0]) == is_one
    else:
        hits = predictions(logits, finite) == y
    return hits.sum(1).double().div_(y.shape[1])


def planar_targets(y: torch.Tensor, n_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Labels y (K, N) as planar one-hot rows (K, C, N): fast mode's targets."""
    k, n = y.shape
    return torch.zeros(k, n_classes, n, dtype=dtype, device=y.device).scatter_(1, y.unsqueeze(1), 1.0)


def planar_nll(
    logits: torch.Tensor, targets: torch.Tensor, grad: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fast mode's loss: each member's mean cross-entropy (K,) and its gradient wrt the logits.

    logits (K, N, C), a view of planar (K, C, N) (what fast mode's forward returns); targets the
    planar one-hot labels (K, C, N) (`planar_targets`). log p = log_softmax over the classes,
    loss = -(1/N) sum_n sum_c onehot_{c,n} log p_{c,n}, summed planar in float32 (not in torch's
    nll_loss order); dL/dlogits = (softmax - onehot) / N, returned as a (K, N, C) view of a planar
    (K, C, N) tensor (None when grad is False).
    """
    planar = logits.transpose(1, 2)  # (K, C, N)
    n = planar.shape[2]
    if planar.shape[1] == 2:
        return _two_class_nll(planar, targets, grad)
    log_probs = torch.log_softmax(planar, 1)
    loss = torch.mul(log_probs, targets).sum((1, 2)).div_(-n)
    if not grad:
        return loss, None
    return loss, log_probs.exp_().sub_(targets).div_(n).transpose(1, 2)


def _two_class_nll(
    planar: torch.Tensor, targets: torch.Tensor, grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`planar_nll` for two classes, on the logit difference alone (half the elementwise work).

    With d = l_1 - l_0 and a = d (label 0) or -d (label 1), i.e. a = d (t_0 - t_1) = l_other - l_label:
    -log p_label = softplus(a), and dL/dl_1 = -dL/dl_0 = sigmoid(a) (t_0 - t_1) / N.
    """
    n = planar.shape[2]
    sign = targets[:, 0] - targets[:, 1]  # (K, N): +1 for label 0, -1 for label 1
    a = torch.sub(planar[:, 1], planar[:, 0]).mul_(sign)
    loss = torch.nn.functional.softplus(a).sum(1).div_(n)
    if not grad:
        return loss, None
    g1 = a.sigmoid_().mul_(sign).div_(n)
    return loss, torch.stack([-g1, g1], 1).transpose(1, 2)
