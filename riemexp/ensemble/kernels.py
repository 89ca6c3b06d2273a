"""Elementwise kernels whose result depends on where an element sits in its tensor, made per member.

torch's cpu loops run an elementwise kernel vectorised over blocks of 2 x (SIMD width) elements
and finish each thread's range with a scalar loop. For most kernels the two agree bit for bit,
but some do not (sigmoid and softplus use a SIMD exp in one and libm's exp in the other), so an
element's value depends on whether it falls in the tail of its tensor. A single run applies
sigma to its (N, w) tensor; the ensemble applies it to (K, w, N), where the tails fall
elsewhere. `as_single_run` applies such a kernel to the stacked tensor and then recomputes the
elements whose path differs: those in the stacked tensor's own tails (on a padded block, so
vectorised) and those in each member's single-run tail (on a strided view, so scalar).

The partition follows at::parallel_for (used above GRAIN_SIZE elements when torch has several
threads): T = min(threads, ceil(n / GRAIN_SIZE)) ranges of ceil(n / T) elements. A member thus
matches a single run made with the same number of torch threads; the thread count matters only
for tensors above GRAIN_SIZE elements (a single run with 16384 or more points at width 2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

GRAIN_SIZE = 32768  # at::internal::GRAIN_SIZE
#: float32 elements per SIMD register, by torch's cpu capability
SIMD_FLOATS = {"AVX512": 16, "AVX2": 8}

Kernel = Callable[..., torch.Tensor]


def block() -> int:
    """Elements per vectorised iteration of torch's cpu loops (two SIMD registers of float32)."""
    return 2 * SIMD_FLOATS.get(torch.backends.cpu.get_cpu_capability(), 8)


def scalar_tails(numel: int, step: int | None = None, threads: int | None = None) -> list[tuple[int, int]]:
    """The [start, stop) ranges of a contiguous numel-element tensor that torch's loops run scalar."""
    step = step or block()
    threads = threads or torch.get_num_threads()
    if numel < GRAIN_SIZE or threads == 1:
        ranges = [(0, numel)]
    else:
        parts = min(threads, -(-numel // GRAIN_SIZE))
        size = -(-numel // parts)
        ranges = [(a, min(numel, a + size)) for a in range(0, numel, size)]
    return [(a + (b - a) // step * step, b) for a, b in ranges if (b - a) % step]


def _vectorised(kernel: Kernel, inputs: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
    """kernel on the flat elements `index` of inputs, every one on the vectorised path."""
    step = block()
    pad = -len(index) % step
    picked = [F.pad(t.reshape(-1)[index], (0, pad)) for t in inputs]
    return kernel(*picked)[: len(index)]


def _scalar(kernel: Kernel, inputs: list[torch.Tensor]) -> torch.Tensor:
    """kernel on equally shaped inputs, every element on the scalar path (a strided view)."""
    strided = [torch.stack([t, t], -1)[..., 0] for t in inputs]
    return kernel(*strided)


def as_single_run(kernel: Kernel, *inputs: torch.Tensor) -> torch.Tensor:
    """kernel(*inputs) on planar (K, w, N) tensors, each element as a single run's (N, w) tensor gets it."""
    inputs_c = [t.contiguous() for t in inputs]
    out = kernel(*inputs_c)
    k, w, n = out.shape
    flat = out.view(-1)
    for a, b in scalar_tails(out.numel()):  # the stacked tensor's own tails: recompute vectorised
        index = torch.arange(a, b, device=out.device)
        flat[index] = _vectorised(kernel, inputs_c, index)
    for a, b in scalar_tails(n * w):  # each member's single-run tail (point-major order): scalar
        index = torch.arange(a, b, device=out.device)
        point, coord = index // w, index % w
        out[:, coord, point] = _scalar(kernel, [t[:, coord, point] for t in inputs_c])
    return out
