"""K layered networks of one kind, width, depth and activation, stacked along a leading member axis.

Member k is the `LayeredNetwork` of riemexp.nets with its own weights W_l^k, b_l^k, head
V^k, c^k, input standardisation and step size h^k; the update is the kind's own, evaluated as a
single run evaluates it (`riemexp.nets.kind.carry`, `add`; backward `step_grad`):

    x_{l+1} = a x_l + c x_{l-1} + beta sigma(W_l x_l + b_l),  x_{-1} = x_0
    logits    V x_L + c

e.g. plain (a, c, beta) = (0, 0, 1), residual (1, 0, h), c2 (2, -1, h^2). Coefficients that
depend on h are kept per member.

All of a member's parameters live in one row of `params` (K, P), in the order of a
LayeredNetwork's parameters (weight (L, w, w), bias (L, w), head weight (C, w), head bias (C,)),
so that an optimiser updates every member with a few operations on one tensor.

Layout and arithmetic. Hidden coordinates are kept "planar", (K, w, N): each coordinate of
every member is a contiguous row of N points, so that the elementwise work (sigma, h *, +) runs
on long contiguous rows and W_l x_l is one batched product. The backward pass is written out by
hand (no autograd graph) with the kernels autograd itself calls (tanh_backward, ...).

`exact` mode makes every member's forward values and gradients bit for bit those of the same
network trained alone by autograd: the sums over the N points (dL/dW_l = sum_n g_n x_n^T and
dL/db_l = sum_n g_n) are taken on point-major copies (K, N, w), the layout a single run
uses, so that each member's sum runs in the same order; products contracting w or C terms are
computed planar, which gives the same result for up to `EXACT_MAX_CONTRACTION` terms (measured
with MKL: a plain left-to-right sum; wider products use blocked kernels whose order depends on
the layout). `exact` defaults to on when width and classes are both <= EXACT_MAX_CONTRACTION.

Fast mode (exact=False) drops the single run's order for speed: everything stays planar, z_l is
one baddbmm, tanh is computed as 2 sigmoid(2 z) - 1 (torch's sigmoid is several times cheaper
than its tanh), the residual backward accumulates W^T dL/dz in place, the two-class loss works on
the logit difference, and the tape lives in buffers reused every step. Each step agrees with a
single run's to float32 rounding (and with autograd's to 1e-9 in float64, tested), but training
amplifies the difference, so after hundreds of epochs a member is a valid training of its config
that can end far from the single run (docs/ensembles.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from riemexp.activations import get_activation
from riemexp.config import NetworkConfig
from riemexp.ensemble.kernels import as_single_run
from riemexp.nets.kind import Scale, add, carry, scaled, step_grad
from riemexp.nets.network import INPUT_DIM, LayeredNetwork, build_network
from riemexp.nets.registry import get_kind

#: products over at most this many terms are computed identically in the planar layout
EXACT_MAX_CONTRACTION = 3

Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

#: dL/dz from dL/dsigma(z), with the kernel autograd uses: (grad, z, sigma(z)) -> grad wrt z
SIGMA_BACKWARD: dict[str, Backward] = {
    "tanh": lambda g, z, s: torch.ops.aten.tanh_backward(g, s),
    "sigmoid": lambda g, z, s: torch.ops.aten.sigmoid_backward(g, s),
    "relu": lambda g, z, s: torch.ops.aten.threshold_backward(g, s, 0),
    "softplus": lambda g, z, s: torch.ops.aten.softplus_backward(g, z, 1.0, 20.0),
    "identity": lambda g, z, s: g,
}

#: kernels whose vectorised and scalar loops differ in the last bit (see riemexp.ensemble.kernels)
PATH_DEPENDENT_SIGMA = {"sigmoid", "softplus"}
PATH_DEPENDENT_BACKWARD = {"softplus"}


def point_major(x: torch.Tensor) -> torch.Tensor:
    """Planar (K, w, N) -> point-major (K, N, w), contiguous (the layout of a single run's tensors)."""
    if x.shape[1] == 2:  # two rows interleave fastest as the real and imaginary parts of a complex row
        return torch.view_as_real(torch.complex(x[:, 0], x[:, 1]))
    return x.transpose(1, 2).contiguous()


def parameter_sizes(width: int, depth: int, n_classes: int) -> tuple[int, int, int, int]:
    """Numbers of weight, bias, head weight and head bias entries of one member."""
    return depth * width * width, depth * width, n_classes * width, n_classes


@dataclass
class Tape:
    """What the backward pass needs from a training forward pass.

    inputs[l]: x_l for l = 0 .. L, point-major (K, N, w) in exact mode, else planar (K, w, N).
    pre[l], post[l]: z_l = W_l x_l + b_l and sigma(z_l), planar (K, w, N).
    """

    inputs: list[torch.Tensor]
    pre: list[torch.Tensor]
    post: list[torch.Tensor]


class StackedNetwork:
    """K networks sharing kind, width, depth and activation; weights, h and input scaling per member.

    params (K, P) float32; step_size, input_shift (K, 2), input_scale (K, 2) per member.
    """

    def __init__(
        self,
        configs: Sequence[NetworkConfig],
        n_classes: int,
        params: torch.Tensor,
        input_shift: torch.Tensor,
        input_scale: torch.Tensor,
        exact: bool | None = None,
    ) -> None:
        first = configs[0]
        self.configs = tuple(configs)
        self.kind = get_kind(first.kind)
        self.width, self.depth, self.n_classes = first.width, first.depth, n_classes
        self.activation = first.activation.value
        sizes = parameter_sizes(self.width, self.depth, n_classes)
        if params.shape != (len(configs), sum(sizes)):
            raise ValueError(
                f"params must have shape ({len(configs)}, {sum(sizes)}), got {tuple(params.shape)}"
            )
        self.sizes = sizes
        self.params = params
        self.input_shift, self.input_scale = input_shift, input_scale
        self._workspace: dict[tuple, torch.Tensor] = {}  # fast mode's buffers (`_work`)
        fits = max(self.width, n_classes) <= EXACT_MAX_CONTRACTION
        self.exact = fits if exact is None else bool(exact)
        sigma, _ = get_activation(self.activation)
        backward = SIGMA_BACKWARD[self.activation]
        self.sigma = sigma
        self.sigma_backward = backward
        if self.exact and self.activation in PATH_DEPENDENT_SIGMA:
            self.sigma = functools.partial(as_single_run, sigma)
        if self.exact and self.activation in PATH_DEPENDENT_BACKWARD:
            self.sigma_backward = functools.partial(as_single_run, backward)
        # the coefficients as a single run multiplies by them: each rounded once (h^2 for c2) to float32
        coefficients = [self.kind.coefficients(float(c.step_size)) for c in configs]
        self.a = self._per_member([co.a for co in coefficients], params)
        self.c = self._per_member([co.c for co in coefficients], params)
        beta = [co.beta for co in coefficients]
        self.coeff: Scale = 1.0 if all(v == 1.0 for v in beta) else self._tensor(beta, params)
        self.beta: Scale = self._per_member(beta, params)  # fast mode: a number when the members share it

    @staticmethod
    def _tensor(values: list[float], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1)

    @classmethod
    def _per_member(cls, values: list[float], like: torch.Tensor) -> Scale:
        """One number when every member shares it (a single run's 0, 1, 2, -1), else (K, 1, 1)."""
        return values[0] if len(set(values)) == 1 else cls._tensor(values, like)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_networks(cls, models: Sequence[LayeredNetwork], exact: bool | None = None) -> StackedNetwork:
        """Stack trained or freshly initialised networks (same kind, width, depth, activation)."""
        rows = [
            torch.cat(
                [m.weight.detach().flatten(), m.bias.detach().flatten()]
                + [p.detach().flatten() for p in m.head.parameters()]
            )
            for m in models
        ]
        return cls(
            [m.cfg for m in models],
            models[0].head.out_features,
            torch.stack(rows),
            torch.stack([m.get_buffer("input_shift").detach() for m in models]),
            torch.stack([m.get_buffer("input_scale").detach() for m in models]),
            exact,
        )

    def select(self, members: torch.Tensor | Sequence[int]) -> StackedNetwork:
        """The sub-ensemble of the given member positions (copies)."""
        idx = torch.as_tensor(members, dtype=torch.long, device=self.params.device)
        configs = [self.configs[i] for i in idx.tolist()]
        return StackedNetwork(
            configs,
            self.n_classes,
            self.params.index_select(0, idx),
            self.input_shift.index_select(0, idx),
            self.input_scale.index_select(0, idx),
            self.exact,
        )

    def to(self, device: torch.device | str) -> StackedNetwork:
        """A copy with every tensor on `device`."""
        return StackedNetwork(
            self.configs,
            self.n_classes,
            self.params.to(device, copy=True),
            self.input_shift.to(device, copy=True),
            self.input_scale.to(device, copy=True),
            self.exact,
        )

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Views of a (K, P) tensor as weight (K, L, w, w), bias (K, L, w), head weight (K, C, w)
        and head bias (K, C)."""
        k, w, depth, c = params.shape[0], self.width, self.depth, self.n_classes
        weight, bias, head_weight, head_bias = params.split(self.sizes, dim=1)
        return (
            weight.view(k, depth, w, w),
            bias.view(k, depth, w),
            head_weight.view(k, c, w),
            head_bias.view(k, c),
        )

    def network(self, k: int) -> LayeredNetwork:
        """Member k as an ordinary LayeredNetwork (cpu, eval mode); torch's global RNG is left as it was."""
        with torch.random.fork_rng(devices=[]):
            model = build_network(self.configs[k], self.n_classes)
        weight, bias, head_weight, head_bias = (t[k] for t in self.split(self.params))
        state = {
            "weight": weight,
            "bias": bias,
            "head.weight": head_weight,
            "head.bias": head_bias,
            "input_shift": self.input_shift[k],
            "input_scale": self.input_scale[k],
        }
        model.load_state_dict({name: t.detach().cpu().clone() for name, t in state.items()})
        return model.eval()

    # ------------------------------------------------------------------ forward

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Points (K, N, 2) -> layer-0 coordinates, planar (K, w, N): standardise, append w - 2 zero rows."""
        x = (x - self.input_shift[:, None].to(x.dtype)) / self.input_scale[:, None].to(x.dtype)
        k, n, _ = x.shape
        out = x.new_zeros(k, self.width, n)
        out[:, :INPUT_DIM] = x.transpose(1, 2)
        return out

    def _layer(
        self,
        x: torch.Tensor,
        prev: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        tape: Tape | None,
        layer: int,
    ) -> torch.Tensor:
        """x_{l+1} from x_l (and x_{l-1} for two-step kinds), planar (K, w, N); W_l (K, w, w), b_l (K, w).

        The same kernels as without buffers (out= changes where a result goes, not its bits): the
        tape's z_l and sigma(z_l) each keep theirs, x_{l+1} cycles three (`_work`).
        """
        # evaluation cycles three sets, so that x_l and x_{l-1} (perhaps z or sigma(z) of an earlier
        # layer: plain with the identity) are never written over while still read
        role, index = ("train", layer) if tape is not None else ("eval", layer % 3)
        z = torch.bmm(weight, x, out=self._work(role, "z", index, x.shape))
        z.add_(bias.unsqueeze(-1))  # W x, then + b: addmm's order
        if self.activation == "tanh":
            s = torch.tanh(z, out=self._work(role, "s", index, x.shape))
        else:
            s = self.sigma(z)
        if tape is not None:
            tape.pre.append(z)
            tape.post.append(s)
        carried = carry(x, prev, self.a, self.c)
        if carried is x:  # one-step kinds with a = 1 (residual): x + beta sigma into a buffer
            out = self._work(role, "x", layer % 3, x.shape)  # the tape keeps point-major copies
            if isinstance(self.coeff, float) and self.coeff == 1.0:
                return torch.add(x, s, out=out)
            branch = torch.mul(s, self.coeff, out=self._work(role, "branch", 0, x.shape))
            return torch.add(x, branch, out=out)
        # beta sigma: h sigma (residual), h^2 sigma (c2), rounded as in a single run
        return add(carried, scaled(s, self.coeff))

    def _point_major(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """`point_major` of the tape's input to `layer`, into a buffer kept for it."""
        if x.shape[1] != 2:
            return point_major(x)
        k, _, n = x.shape
        pair = self._work(
            "train",
            "point_major",
            layer,
            (k, n),
            torch.complex64 if x.dtype == torch.float32 else torch.complex128,
        )
        return torch.view_as_real(torch.complex(x[:, 0], x[:, 1], out=pair))

    def forward(self, x0: torch.Tensor, tape: Tape | None = None) -> torch.Tensor:
        """Logits (K, N, C) from layer-0 coordinates x0 (K, w, N); fills `tape` when given.

        Exact mode: a contiguous point-major tensor; fast mode: a view of planar (K, C, N) logits.
        """
        if not self.exact:
            return self._forward_fast(x0, tape)
        weight, bias, head_weight, head_bias = self.split(self.params)
        x = prev = x0
        for layer, (W, b) in enumerate(zip(weight.unbind(1), bias.unbind(1))):
            if tape is not None:
                tape.inputs.append(self._point_major(x, layer))
            x, prev = self._layer(x, prev, W, b, tape, layer), x
        if tape is not None:
            tape.inputs.append(self._point_major(x, self.depth))
        logits = torch.bmm(head_weight, x).add_(head_bias.unsqueeze(-1))  # (K, C, N)
        return point_major(logits)

    # ------------------------------------------------------------------ backward

    def _sums(
        self, g: torch.Tensor, inputs: torch.Tensor, grad_weight: torch.Tensor, grad_bias: torch.Tensor
    ) -> None:
        """Into grad_weight (K, m, w) and grad_bias (K, m): sum_n g_n x_n^T and sum_n g_n, from g planar
        (K, m, N) and the layer's input x (`Tape.inputs`)."""
        if self.exact:  # point-major, as autograd sums them for a single run: grad.t().mm(x), grad.sum(0)
            g = self._point_major_grad(g)
            torch.bmm(g.transpose(1, 2), inputs, out=grad_weight)
            torch.sum(g, 1, out=grad_bias)
        else:
            torch.bmm(g, inputs.transpose(1, 2), out=grad_weight)
            torch.sum(g, 2, out=grad_bias)

    def _point_major_grad(self, g: torch.Tensor) -> torch.Tensor:
        """`point_major` of a backward plane, into one buffer reused layer after layer."""
        if g.shape[1] != 2:
            return point_major(g)
        k, _, n = g.shape
        pair = self._work(
            "grad",
            "point_major",
            0,
            (k, n),
            torch.complex64 if g.dtype == torch.float32 else torch.complex128,
        )
        return torch.view_as_real(torch.complex(g[:, 0], g[:, 1], out=pair))

    def backward(self, tape: Tape, grad_logits: torch.Tensor) -> torch.Tensor:
        """dL/dparams (K, P) from dL/dlogits (K, N, C) and the tape of the forward pass."""
        if not self.exact:
            return self._backward_fast(tape, grad_logits)
        weight, _, head_weight, _ = self.split(self.params)
        k, w, depth = self.params.shape[0], self.width, self.depth
        grad = torch.empty_like(self.params)
        g_weight, g_bias, g_head_weight, g_head_bias = self.split(grad)
        # layer by layer into contiguous buffers (out= needs them), copied into grad at the end
        layer_weight = grad.new_empty(depth, k, w, w)
        layer_bias = grad.new_empty(depth, k, w)
        # head: logits = V x_L + c
        g_logits = grad_logits.transpose(1, 2)  # planar view (K, C, N)
        if self.exact:  # grad_logits is point-major already
            g_head_weight.copy_(torch.bmm(grad_logits.transpose(1, 2), tape.inputs[-1]))
            g_head_bias.copy_(grad_logits.sum(1))
        else:
            g_head_weight.copy_(torch.bmm(g_logits, tape.inputs[-1].transpose(1, 2)))
            g_head_bias.copy_(g_logits.sum(2))
        g_x = torch.bmm(head_weight.transpose(1, 2), g_logits)  # dL/dx_L = V^T g, (K, w, N)
        g_next = None  # c2: dL/dx_{l+2}
        residual = all(isinstance(v, float) for v in (self.a, self.c)) and (self.a, self.c) == (1.0, 0.0)
        shape = g_x.shape
        for layer in reversed(range(depth)):
            # g_x = dL/dx_{l+1}
            if isinstance(self.coeff, float) and self.coeff == 1.0:
                g_branch = g_x
            else:
                g_branch = torch.mul(g_x, self.coeff, out=self._work("grad", "branch", 0, shape))
            if self.activation == "tanh":
                g_z = torch.ops.aten.tanh_backward.grad_input(
                    g_branch, tape.post[layer], grad_input=self._work("grad", "z", 0, shape)
                )
            else:
                g_z = self.sigma_backward(g_branch, tape.pre[layer], tape.post[layer])
            self._sums(g_z, tape.inputs[layer], layer_weight[layer], layer_bias[layer])
            if layer == 0:
                break  # x_0 is the input: no gradient
            # W_l^T g_z, into one of two buffers: it may be g_{l+1} itself (plain: g_x = g_through)
            g_through = torch.bmm(
                weight[:, layer].transpose(1, 2), g_z, out=self._work("grad", "through", layer % 2, shape)
            )
            if residual:  # g_through + g_{l+1}, autograd's order, into the other of two buffers
                g_x = torch.add(g_through, g_x, out=self._work("grad", "x", layer % 2, shape))
                continue
            # in the order autograd adds them (c2: -g_{l+2} for x_l as prev, W^T g_z, 2 g_{l+1})
            g_x, g_next = step_grad(g_x, g_through, g_next, self.a, self.c), g_x
        g_weight.copy_(layer_weight.transpose(0, 1))
        g_bias.copy_(layer_bias.transpose(0, 1))
        return grad

    # ------------------------------------------------------------------ fast mode

    def _scale(self, factor: float) -> Scale:
        """factor beta: a number, or (K, 1, 1) when beta is per member."""
        return factor * self.beta

    def _forward_fast(self, x0: torch.Tensor, tape: Tape | None) -> torch.Tensor:
        """The forward pass of fast mode, planar throughout: logits as a (K, N, C) view of (K, C, N).

        z_l = W_l x_l + b_l is one batched multiply-add (baddbmm). tanh is evaluated through the
        logistic function, tanh z = 2 sigmoid(2 z) - 1 (sigmoid is several times cheaper than tanh
        in torch's cpu kernels), with 2 z = (2 W_l) x_l + 2 b_l exactly (doubling rounds nothing):
        the tape keeps s_l = sigmoid(2 z_l), from which the backward pass takes the derivative
        tanh'(z) = 4 s (1 - s). x_{l+1} = (carried + 2 beta s) - beta.
        """
        weight, bias, head_weight, head_bias = self.split(self.params)
        logistic = self.activation == "tanh"
        if logistic:
            weight, bias = weight * 2, bias * 2
        weights, biases = weight.unbind(1), bias.unsqueeze(-1).unbind(1)  # per layer, in two calls
        two_beta = self._scale(2.0)
        k, w, n = x0.shape
        role = "train" if tape is not None else "eval"
        x = prev = x0
        for layer in range(self.depth):
            if tape is not None:
                tape.inputs.append(x)
            # the tape's layers each keep their buffers; evaluation cycles three sets, so that x_l and
            # x_{l-1} (perhaps z of an earlier layer: plain with the identity) are never written over
            z = self._work(role, "z", layer if tape is not None else layer % 3, (k, w, n))
            torch.baddbmm(biases[layer], weights[layer], x, out=z)
            carried = carry(x, prev, self.a, self.c)
            if logistic:
                s = z.sigmoid_()
                out = self._work(role, "x", layer + 1 if tape is not None else layer % 3, (k, w, n))
                if carried is None:
                    torch.mul(s, two_beta, out=out)
                elif isinstance(two_beta, float):
                    torch.add(carried, s, alpha=two_beta, out=out)
                else:
                    torch.addcmul(carried, s, two_beta, out=out)
                out.sub_(self.beta)
            else:
                s = self.sigma(z)
                out = add(carried, scaled(s, self.coeff))
                if tape is not None:
                    tape.pre.append(z)
            if tape is not None:
                tape.post.append(s)
            x, prev = out, x
        if tape is not None:
            tape.inputs.append(x)
        logits = torch.baddbmm(head_bias.unsqueeze(-1), head_weight, x)  # (K, C, N)
        return logits.transpose(1, 2)

    def _work(
        self, role: str, name: str, index: int, shape: tuple[int, ...], dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """A buffer, allocated once and reused by every later step of the same shape.

        Allocating the tape afresh each step costs more than the arithmetic: the memory allocator
        hands the freed megabytes back to the system and every new page then faults on first touch.
        A buffer's contents live until the next forward (or backward) pass of the same role.
        """
        key = (role, name, index, tuple(shape))
        buffer = self._workspace.get(key)
        if buffer is None:
            buffer = self._workspace[key] = self.params.new_empty(shape, dtype=dtype)
        return buffer

    def _backward_fast(self, tape: Tape, grad_logits: torch.Tensor) -> torch.Tensor:
        """The backward pass of fast mode (planar sums and products); grad_logits (K, N, C), any strides."""
        weight, _, head_weight, _ = self.split(self.params)
        grad = torch.empty_like(self.params)
        g_weight, g_bias, g_head_weight, g_head_bias = self.split(grad)
        g_logits = grad_logits.transpose(1, 2)  # planar (K, C, N)
        x_last = tape.inputs[-1]
        g_head_weight.copy_(torch.bmm(g_logits, x_last.transpose(1, 2)))
        g_head_bias.copy_(g_logits.sum(2))
        g_x = torch.bmm(
            head_weight.transpose(1, 2), g_logits, out=self._work("grad", "g", 0, x_last.shape)
        )  # dL/dx_L = V^T g, (K, w, N)
        logistic = self.activation == "tanh"
        # tanh: dx_{l+1}/dz_l = beta tanh'(z_l) = 4 beta s (1 - s); u = g s (1 - s), dL/dz_l = 4 beta u
        factor = self._scale(4.0) if logistic else 1.0
        one_step = isinstance(self.c, float) and self.c == 0.0 and isinstance(self.a, float) and self.a == 1.0
        k, w = g_x.shape[:2]
        # every layer's sums into two buffers, scaled and copied into grad once at the end
        layer_weight = self._work("grad", "weight", 0, (self.depth, k, w, w))
        layer_bias = self._work("grad", "bias", 0, (self.depth, k, w))
        # W_l^T, times 4 beta for tanh (dL/dz = 4 beta u), for every layer at once: (K, L, w, w)
        if isinstance(factor, torch.Tensor):
            w_t = weight.transpose(2, 3) * factor.view(-1, 1, 1, 1)
        else:
            w_t = weight.transpose(2, 3) * factor if logistic else weight.transpose(2, 3)
        w_ts, sums_weight, sums_bias = w_t.unbind(1), layer_weight.unbind(0), layer_bias.unbind(0)
        u_buffer = self._work("grad", "u", 0, g_x.shape)
        g_next = None  # two-step kinds: dL/dx_{l+2}
        for layer in reversed(range(self.depth)):
            if logistic:
                u = torch.ops.aten.sigmoid_backward.grad_input(g_x, tape.post[layer], grad_input=u_buffer)
            else:
                u = self.sigma_backward(scaled(g_x, self.coeff), tape.pre[layer], tape.post[layer])
            torch.bmm(u, tape.inputs[layer].transpose(1, 2), out=sums_weight[layer])
            torch.sum(u, 2, out=sums_bias[layer])
            if layer == 0:
                break  # x_0 is the input: no gradient
            if one_step:  # residual: dL/dx_l = dL/dx_{l+1} + W_l^T dL/dz_l, one multiply-add in place
                g_x = g_x.baddbmm_(w_ts[layer], u)
            else:
                g_x, g_next = step_grad(g_x, torch.bmm(w_ts[layer], u), g_next, self.a, self.c), g_x
        if isinstance(factor, torch.Tensor):
            layer_weight.mul_(factor.view(1, -1, 1, 1))
            layer_bias.mul_(factor.view(1, -1, 1))
        elif factor != 1.0:
            layer_weight.mul_(factor)
            layer_bias.mul_(factor)
        g_weight.copy_(layer_weight.transpose(0, 1))
        g_bias.copy_(layer_bias.transpose(0, 1))
        return grad
