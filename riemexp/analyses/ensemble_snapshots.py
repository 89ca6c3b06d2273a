"""Geometry snapshots of K ensemble members in one batched pass: each member's snapshots.npz as alone.

A run's `riemexp.analyses.snapshots.SnapshotRecorder` measures one network at a snapshot epoch:
the layer coordinates of the snapshot grid and of the data points, the input metric g_0 and its
log volume element, det J_l of every layer, the class probabilities, the decision boundary located
by multisection on the classifier (`riemexp.geometry.boundary`), the boundary numbers and the
scores. An ensemble's members reach a snapshot epoch together, so `record_members` measures them
together: the float64 work runs once on arrays with a leading member axis,

    coordinates   x_{l+1} = a x_l + beta_k sigma(W_kl x_l + b_kl)      (K, L+1, M, w)
    g_0           Q_L = I, Q_l = a Q_{l+1} + beta_k (Q_{l+1} D) W_kl     (K, M, w, w): Q_0^T Q_0
    det J_l       J_l = a I + beta_k D W_kl                             (K, L, M)
    log volume    sum_l log|det J_l| - sum log scale_k                  (K, M)
    classes       argmax(V_k x_L + c_k)                                 (K, M)

and the multisection classifies every member's boundary crossings in one call per round (each
member's crossings padded to the largest count with copies of its first). Per member remain the
scores (the float32 forward pass of `riemexp.train.evaluate`) and the boundary numbers from the
located segments (numpy: distances, ranks, medians).

Every array is the one the member's own recorder computes, bit for bit, on torch's cpu kernels:
a product batched over members (`baddbmm`, `matmul`) gives each member the bits of its own
`addmm`/`bmm`; a per-member step size enters the coordinates through `addcmul`, which rounds as
the single run's fused `torch.add(x, act, alpha=h)`, and the pullback's `baddbmm(..., alpha=beta)`
is called once per distinct beta. Tested against the single recorder for every one-step kind and
activation (tests/test_ensemble_snapshots.py). Where the batched pass does not apply (two-step
kinds, width above 2, another device, a hook that is not a SnapshotRecorder) each member records
alone, as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from riemexp.analyses.snapshots import SnapshotRecorder
from riemexp.config import INPUT_DIM
from riemexp.geometry.boundary import grid_crossings, join_crossings, locate, measure
from riemexp.nets.kind import add, carry, scaled

if TYPE_CHECKING:
    from riemexp.nets.network import LayeredNetwork

F64 = torch.float64


@dataclass
class MemberStack:
    """The float64 weights of K networks of one kind, depth, width and activation, stacked.

    W (K, L, w, w), b (K, L, w), V (K, C, w), c (K, C) the head, shift and scale (K, 2) the input
    standardisation; a and cc the kind's coefficients (shared), beta (K,) the branch's (per member:
    h for residual networks).
    """

    W: torch.Tensor
    b: torch.Tensor
    V: torch.Tensor
    c: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor
    a: float
    cc: float
    beta: list[float]
    sigma: Any
    dsigma: Any

    @classmethod
    def of(cls, models: Sequence[LayeredNetwork]) -> MemberStack:
        first = models[0]

        def stacked(get: Any) -> torch.Tensor:
            return torch.stack([get(m).detach().to(F64) for m in models])

        co = first.coefficients
        return cls(
            W=stacked(lambda m: m.weight),
            b=stacked(lambda m: m.bias),
            V=stacked(lambda m: m.head.weight),
            c=stacked(lambda m: m.head.bias),
            shift=stacked(lambda m: m.input_shift),
            scale=stacked(lambda m: m.input_scale),
            a=float(co.a),
            cc=float(co.c),
            beta=[float(m.coefficients.beta) for m in models],
            sigma=first.sigma,
            dsigma=first.dsigma,
        )

    def __post_init__(self) -> None:
        #: beta as a (K, 1, 1) tensor, made once
        self.beta_t = torch.tensor(self.beta, dtype=F64)[:, None, None]

    def coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates of points x (K, M, 2) in every layer: (K, L+1, M, w) (`layer_coordinates`)."""
        K, L, w = self.W.shape[0], self.W.shape[1], self.W.shape[2]
        coords = torch.zeros((K, L + 1, x.shape[1], w), dtype=F64)
        coords[:, 0, :, :INPUT_DIM] = (x - self.shift[:, None]) / self.scale[:, None]
        same_beta = len(set(self.beta)) == 1
        beta: Any = self.beta[0] if same_beta else self.beta_t
        for layer in range(L):
            xl = coords[:, layer]
            prev = coords[:, layer - 1] if layer > 0 else xl
            act = self.sigma(torch.baddbmm(self.b[:, layer, None, :], xl, self.W[:, layer].mT))  # (K, M, w)
            if self.a == 1.0 and self.cc == 0.0:
                # the single run's torch.add(x, act, alpha=h), with h per member (same rounding)
                torch.addcmul(xl, act, self.beta_t, out=coords[:, layer + 1])
            else:
                coords[:, layer + 1] = add(carry(xl, prev, self.a, self.cc), scaled(act, beta))
        return coords

    def classes(self, x_last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (K, M, C) and predicted classes (K, M) of last-layer coordinates (K, M, w)."""
        logits = torch.baddbmm(self.c[:, None, :], x_last, self.V.mT)
        return logits, logits.argmax(dim=-1)

    def classify(self, points: np.ndarray) -> np.ndarray:
        """Predicted classes (K, P) of points (K, P, 2) in input units (`network_classifier`)."""
        x = torch.as_tensor(points, dtype=F64)
        return self.classes(self.coordinates(x)[:, -1])[1].numpy()

    def input_metric(self, coords: torch.Tensor) -> torch.Tensor:
        """g_0 in input units at the points of coords (K, L+1, M, w): (K, M, 2, 2) (`pullback`'s
        one-step recursion, points last, down to layer 0)."""
        K, L, w = self.W.shape[0], self.W.shape[1], self.W.shape[2]
        M = coords.shape[2]
        eye = torch.eye(w, dtype=F64)
        r1 = eye[:, :, None].expand(K, w, w, M).contiguous()  # (K, w, w, M): Q_L = I, q[k, i, a, n]
        groups = [(beta, [k for k in range(K) if self.beta[k] == beta]) for beta in dict.fromkeys(self.beta)]
        for layer in range(L - 1, -1, -1):
            z = torch.baddbmm(self.b[:, layer, :, None], self.W[:, layer], coords[:, layer].mT)  # (K, w, M)
            qd = r1 * self.dsigma(z)[:, None, :, :]  # (K, w, w, M): Q D
            wt = self.W[:, layer].mT[:, None].expand(K, w, w, w)  # (K, w, w, w): W^T per row of Q
            nxt = torch.empty_like(r1)
            for beta, ks in groups:
                idx = torch.tensor(ks)
                n = len(ks)
                args = (wt[idx].reshape(n * w, w, w), qd[idx].reshape(n * w, w, M))
                if self.a == 0.0 and beta == 1.0:
                    out = torch.bmm(*args)
                else:
                    out = torch.baddbmm(r1[idx].reshape(n * w, w, M), *args, beta=self.a, alpha=beta)
                nxt[idx] = out.reshape(n, w, w, M)
            r1 = nxt
        g = r1[:, 0, :, None, :] * r1[:, 0, None, :, :]  # (K, w, w, M): sum_i q[i, a] q[i, b]
        for i in range(1, w):
            g.addcmul_(r1[:, i, :, None, :], r1[:, i, None, :, :])
        g0 = g.permute(0, 3, 1, 2)[..., :INPUT_DIM, :INPUT_DIM]  # (K, M, 2, 2)
        return g0 / (self.scale[:, None, :, None] * self.scale[:, None, None, :])

    def dets_and_log_volume(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """det J_l (K, L, M) and 1/2 log det g_in (K, M) at width 2 (`_dets_and_log_volume`)."""
        z = torch.matmul(coords[:, :-1], self.W.mT) + self.b.unsqueeze(-2)  # (K, L, M, w)
        jac = self.dsigma(z).unsqueeze(-1) * self.W.unsqueeze(-3)  # (K, L, M, w, w): D W
        if any(beta != 1.0 for beta in self.beta):
            jac.mul_(self.beta_t[..., None, None])
        if self.a != 0.0:
            jac.diagonal(dim1=-2, dim2=-1).add_(self.a)
        dets = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
        log_volume = torch.stack(
            [d.abs().log().sum(0) - torch.log(s).sum() for d, s in zip(dets, self.scale)]
        )
        return dets, log_volume


def batchable(pairs: Sequence[tuple[Any, Any]]) -> bool:
    """Whether `record_members` measures these (recorder, model) pairs in one pass: SnapshotRecorders
    of one-step networks of width 2 on the cpu, of one kind and shape, on grids and data of one size."""
    if len(pairs) < 2 or not all(isinstance(r, SnapshotRecorder) for r, _ in pairs):
        return False
    models = [m for _, m in pairs]
    first = models[0]
    if first.kind.two_step or first.width != INPUT_DIM or first.weight.device.type != "cpu":
        return False
    shape = (first.kind.name, tuple(first.weight.shape), tuple(first.head.weight.shape), first.sigma)
    if any(
        (m.kind.name, tuple(m.weight.shape), tuple(m.head.weight.shape), m.sigma) != shape for m in models
    ):
        return False
    recorders = [r for r, _ in pairs]
    return len({(r.grid.shape, r.grid_shape, r.data_points.shape) for r in recorders}) == 1


@torch.no_grad()
def record_members(pairs: Sequence[tuple[Any, LayeredNetwork]], epoch: int) -> None:
    """Record the snapshot of `epoch` for each (recorder, model) pair whose recorder wants it: in one
    batched pass where `batchable` allows (module docstring), else each recorder alone. Each
    recorder is charged an equal share of the batched pass's seconds."""
    pairs = [(r, m) for r, m in pairs if r is not None and (not hasattr(r, "wants") or r.wants(epoch))]
    if not batchable(pairs):
        for recorder, model in pairs:
            recorder.record(model, epoch)
        return
    start = time.perf_counter()
    recorders = [r for r, _ in pairs]
    models = [m for _, m in pairs]
    stack = MemberStack.of(models)
    K = len(pairs)
    grid = torch.as_tensor(np.stack([r.grid for r in recorders]), dtype=F64)  # (K, G, 2)
    coords = stack.coordinates(grid)  # (K, L+1, G, w)
    metric = stack.input_metric(coords).numpy()
    dets, log_volume = stack.dets_and_log_volume(coords)
    logits, classes = stack.classes(coords[:, -1])
    proba = torch.softmax(logits, dim=-1).numpy()
    dets_np, log_volume_np, classes_np = dets.numpy(), log_volume.numpy(), classes.numpy()
    data = torch.as_tensor(np.stack([r.data_points for r in recorders]), dtype=F64)  # (K, N, 2)
    _, data_volume = stack.dets_and_log_volume(stack.coordinates(data))
    data_volume_np = data_volume.numpy()
    segments = _boundaries(stack, recorders, classes_np)
    for k, (recorder, model) in enumerate(pairs):
        numbers = measure(
            segments[k],
            recorder.grid,
            recorder.grid_shape,
            log_volume_np[k],
            recorder.data_points,
            data_volume_np[k],
            recorder.band_fraction,
        )
        recorder.keep(
            epoch,
            recorder.scores(model),
            metric[k],
            log_volume_np[k],
            proba[k],
            dets_np[k],
            numbers,
            segments[k],
        )
    share = (time.perf_counter() - start) / K
    for recorder in recorders:
        recorder.spent(epoch, share)


def _boundaries(
    stack: MemberStack, recorders: Sequence[SnapshotRecorder], classes: np.ndarray
) -> list[np.ndarray]:
    """Each member's decision boundary segments (`boundary_segments`), its crossings located together."""
    crossings = [grid_crossings(r.grid, r.grid_shape, classes[k]) for k, r in enumerate(recorders)]
    most = max(len(c.starts) for c in crossings)
    if most == 0:
        return [np.zeros((0, 2, 2)) for _ in recorders]
    starts = np.empty((len(recorders), most, 2))
    ends = np.empty_like(starts)
    first = np.empty((len(recorders), most), dtype=np.int64)
    for k, c in enumerate(crossings):
        n = len(c.starts)
        # padding: copies of the member's first crossing (or of its first grid point when it has none)
        starts[k, :n], starts[k, n:] = c.starts, c.starts[0] if n else recorders[k].grid[0]
        ends[k, :n], ends[k, n:] = c.ends, c.ends[0] if n else recorders[k].grid[0]
        first[k, :n], first[k, n:] = c.classes, c.classes[0] if n else classes[k, 0]
    found = locate(stack.classify, starts, ends, first=first)  # (K, most, 2)
    return [
        join_crossings(c, found[k, : len(c.starts)]) if len(c.starts) else np.zeros((0, 2, 2))
        for k, c in enumerate(crossings)
    ]


__all__ = ["MemberStack", "batchable", "record_members"]
