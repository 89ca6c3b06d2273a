"""Layer Jacobians as elements of GL(w): determinants, distance from I, the matrix logarithm.

A layer near the identity, J_l = I + h A_l with A_l = D W_l, D = diag(sigma'(W_l x_l + b_l)) (a
residual layer), has log J_l = h A_l - (h A_l)^2 / 2 + ..., so |log J_l - h A_l| = O(h^2): the layer
is one step of size h along the one-parameter subgroup exp(t A_l), up to a second-order remainder.

`lie_table(model, x)` evaluates, at the data points' own coordinates x_l (`layer_coordinates`,
Jacobians from `layer_jacobians`), one row per layer l = 0 .. L-1:

    det_mean, det_min           mean and min over points of det J_l
    det_positive_fraction       fraction of points with det J_l > 0 (orientation kept, J_l in GL+)
    identity_distance_mean      mean of |J_l - I|_F (Frobenius; for two-step kinds the 2w x 2w
                                state Jacobian)
    log_error_mean              kinds near the identity (`Kind.near_identity`: residual) only: mean
                                of |log J_l - (J_l - I)|_F over the points where J_l has a real
                                principal logarithm (no eigenvalue on (-inf, 0])
    log_defined_fraction        the same kinds only: the fraction of points where it has one

Other kinds leave the two log columns empty: a plain J_l = D W_l is not near I, and the c2 state
Jacobian [[2I + h^2 A, -I], [I, 0]] (det = 1 always) is not of the form I + h A.

`matrix_log` computes the real principal logarithm of a batch of real matrices; where a matrix has
an eigenvalue on the closed negative real axis (`has_real_log`) there is none and the result is
NaN. `matrix_log_remainder` computes log A - (A - I), the log_error column's matrix, without
forming it as a difference. Two algorithms (`method`):

  2 x 2 ("auto", the width of most riemexp networks): closed forms, log A = alpha I + beta (A - m I)
    with m = tr A / 2 (`_log_2x2`), elementwise over the batch. Measured against scipy.linalg.logm,
    mpmath at 40 digits and expm(log A) = A: relative error of log A below 5e-15 for complex,
    real-distinct, scalar and random matrices, 1e-13 for Jordan blocks and nearly repeated
    eigenvalues (discriminant 1e-12 lam^2; the reference itself is no better there), 5e-16 at
    scales 1e-5 .. 1e300; relative error of log A - (A - I) for A = I + h X below 5e-15 for every
    h from 0.7 down to 1e-9 (forming it as log A - (A - I) loses 1e-5 of it at h = 1e-9).
    Whether a real log exists is decided from the closed-form eigenvalues, and by LAPACK's
    (`torch.linalg.eigvals`, the general rule) within 1e-6 max(1, |A|_F) of (-inf, 0].
  any n ("general", and "auto" for n != 2): inverse scaling and squaring. Entries beyond 2^+-16
    are first scaled by a power of 2 (log(2^k A) = k log 2 I + log A); Denman-Beavers square roots
    until |A^(1/2^s) - I|_F <= 1/4; the series log(I + X) = sum_k (-1)^(k+1) X^k / k (30 terms,
    error < 1e-19), times 2^s. Valid for defective matrices too; each square root costs up to 60
    batched inverses, slow for many small matrices. The remainder, where no square root was
    taken, is the series past X.

Both agree on the Lie tables of trained networks to 1e-14 relative (`riemexp bench geometry`
times the two).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from riemexp.geometry.coordinates import layer_coordinates, layer_jacobians
from riemexp.nets.network import LayeredNetwork

_SERIES_TERMS = 30
_MAX_SQRTS = 60
# the closed forms for 2 x 2 matrices (`_log_2x2`)
_BETA_SERIES_Z = 0.1  # |z| up to which beta comes from its series in z = Delta / m^2
_BETA_SERIES_TERMS = 15  # truncation < 0.1^16 / 33 (relative)
_LOG1PMX_U = 0.25  # |u| up to which log(1 + u) - u comes from its series in w = u / (2 + u)
_LOG1PMX_TERMS = 10  # truncation < (1/7)^23 (relative)
_NEAR = 1.0  # max |A - I| up to which the identity-relative forms (det(A - I), ...) are used
_SCALE_BITS = 256  # matrices with max |a_ij| outside 2^-256 .. 2^256 are scaled by a power of 2
_UNSURE = 1e-6  # has_real_log: eigenvalues this close (times max(1, |A|_F)) to (-inf, 0] go to LAPACK

LogMethod = Literal["auto", "general"]


def _check_method(method: str) -> None:
    if method not in ("auto", "general"):
        raise ValueError(f"method must be 'auto' or 'general', got {method!r}")


def _sqrt_denman_beavers(a: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """Principal square root of a batch of matrices (..., n, n) by the Denman-Beavers iteration."""
    y, z = a, torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    for _ in range(iterations):
        y_next = 0.5 * (y + torch.linalg.inv(z))
        z = 0.5 * (z + torch.linalg.inv(y))
        done = (y_next - y).abs().amax() <= 1e-15 * max(1.0, float(y_next.abs().amax()))
        y = y_next
        if done:
            break
    return y


def _has_real_log_eig(a: torch.Tensor, tol: float) -> torch.Tensor:
    lam = torch.linalg.eigvals(a)  # (..., n) complex
    scale = lam.abs().clamp_min(1.0)
    on_axis = (lam.real <= tol * scale) & (lam.imag.abs() <= tol * scale)
    return ~on_axis.any(-1)


def _has_real_log_2x2(a: torch.Tensor, tol: float) -> torch.Tensor:
    """`_has_real_log_eig` for 2 x 2 matrices: closed-form eigenvalues m +- sqrt(Delta) decide every
    matrix whose eigenvalues lie farther than 1e-6 max(1, |A|_F) from (-inf, 0] (or are real, well
    apart, one of them below -1e-6 max(1, |A|_F)); LAPACK's eigenvalues decide the rest. The
    margin exceeds both computations' eigenvalue errors (at most ~sqrt(eps) |A|, defective
    matrices included) by 60x, so the answer is the eigenvalue rule's."""
    a11, a12, a21, a22 = a[..., 0, 0], a[..., 0, 1], a[..., 1, 0], a[..., 1, 1]
    m, c = 0.5 * (a11 + a22), 0.5 * (a11 - a22)
    delta = c * c + a12 * a21  # the eigenvalues are m +- sqrt(delta)
    margin = _UNSURE * torch.linalg.matrix_norm(a).clamp_min(1.0)
    root = delta.abs().sqrt()
    low = torch.where(delta > 0, m - root, m)  # real part of the leftmost eigenvalue
    imag = torch.where(delta < 0, root, torch.zeros_like(root))
    yes = (imag > margin) | (low > margin)
    no = (delta > margin * margin) & (low <= -margin)
    unsure = ~(yes | no)
    if unsure.any():
        yes = yes.clone()
        yes[unsure] = _has_real_log_eig(a[unsure], tol)
    return yes


def has_real_log(a: torch.Tensor, tol: float = 1e-12, method: LogMethod = "auto") -> torch.Tensor:
    """True where the real matrix a (..., n, n) has no eigenvalue on (-inf, 0]: shape (...).

    An eigenvalue lam counts as on (-inf, 0] when Re lam <= tol s and |Im lam| <= tol s,
    s = max(|lam|, 1). method "auto": closed-form eigenvalues for 2 x 2 float64 matrices (tol up
    to 1e-9), LAPACK's (`torch.linalg.eigvals`) only near that set; "general": LAPACK's for every
    size.
    """
    _check_method(method)
    if method == "auto" and a.shape[-2:] == (2, 2) and a.dtype == torch.float64 and tol <= 1e-3 * _UNSURE:
        return _has_real_log_2x2(a, tol)
    return _has_real_log_eig(a, tol)


def _log1pmx(u: torch.Tensor) -> torch.Tensor:
    """log(1 + u) - u for |u| <= 1/4, to a few ulps of the result: with w = u / (2 + u),
    log(1 + u) = 2 atanh w, so log(1 + u) - u = -u^2 / (2 + u) + 2 sum_{k>=1} w^(2k+1) / (2k+1)."""
    w = u / (2.0 + u)
    w2 = w * w
    acc = torch.zeros_like(u)
    for k in range(_LOG1PMX_TERMS, 0, -1):
        acc.mul_(w2).add_(1.0 / (2 * k + 1))
    return -u * u / (2.0 + u) + 2.0 * w * w2 * acc


def _log_2x2(a: torch.Tensor, remainder: bool) -> torch.Tensor:
    """Real principal log A (remainder: log A - (A - I)) of real 2 x 2 matrices a (..., 2, 2) in
    closed form; meaningful where A has a real principal logarithm (NaN or garbage elsewhere).

    With m = tr A / 2, C = A - m I (traceless, C^2 = Delta I, Delta = ((a11 - a22)/2)^2 + a12 a21)
    and eigenvalues m +- sqrt(Delta), every function of A is alpha I + beta C; for the log,
    alpha = log(det A) / 2 and beta = (log lam+ - log lam-) / (lam+ - lam-):

        complex pair (Delta < 0)       beta = atan2(sqrt(-Delta), m) / sqrt(-Delta)
        real, distinct (Delta > 0)     beta = log(lam+ / lam-) / (2 sqrt(Delta)), lam- = det A / lam+
        m > 0, |z| <= 0.1, z = Delta / m^2
                                       beta = (1/m) sum_k z^k / (2k+1) (15 terms), both signs of
                                       Delta and the repeated (lam I) and defective cases alike

    The remainder is (alpha - p) I + (beta - 1) C with p = tr(A - I) / 2, each coefficient formed
    without cancellation near I: alpha - p = (log1p(u) - u) / 2 + det(A - I) / 2 with
    u = det A - 1 = tr(A - I) + det(A - I), and beta - 1 = (S - p) / m, S the series above less
    its first term. Entries beyond 2^+-256 are scaled by a power of 2 first (log(2^k A) = k log 2 I
    + log A, exact).
    """

    def entries(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x[..., 0, 0], x[..., 0, 1], x[..., 1, 0], x[..., 1, 1]

    a11, a12, a21, a22 = entries(a)
    amax = torch.maximum(torch.maximum(a11.abs(), a22.abs()), torch.maximum(a12.abs(), a21.abs()))
    scaled = (amax > 2.0**_SCALE_BITS) | (amax < 2.0**-_SCALE_BITS)
    shift = None  # k log 2 where A = 2^k x
    if scaled.any():
        expo = torch.where(scaled, torch.frexp(amax).exponent, 0).to(a.dtype)
        a11, a12, a21, a22 = entries(torch.ldexp(a, -expo[..., None, None]))
        shift = expo * math.log(2.0)
    e11, e22 = a11 - 1.0, a22 - 1.0
    p = 0.5 * (e11 + e22)  # tr(A - I) / 2
    m, c = 0.5 * (a11 + a22), 0.5 * (a11 - a22)
    delta = c * c + a12 * a21
    near = torch.maximum(torch.maximum(e11.abs(), e22.abs()), torch.maximum(a12.abs(), a21.abs())) <= _NEAR
    q = e11 * e22 - a12 * a21  # det(A - I)
    d = a11 * a22 - a12 * a21  # det A
    u = torch.where(near, 2.0 * p + q, d - 1.0)  # det A - 1
    # alpha = log(det A) / 2 and alpha - p
    small_u = u.abs() <= _LOG1PMX_U
    alpha = torch.where(small_u, 0.5 * torch.log1p(u), 0.5 * torch.log(d))
    alpha_p = torch.where(small_u, 0.5 * _log1pmx(u) + 0.5 * torch.where(near, q, u - 2.0 * p), alpha - p)
    # beta and beta - 1
    z = delta / (m * m)
    acc = torch.zeros_like(z)
    for k in range(_BETA_SERIES_TERMS, 0, -1):
        acc.mul_(z).add_(1.0 / (2 * k + 1))
    s = z * acc  # sum_{k>=1} z^k / (2k+1)
    root = delta.abs().sqrt()
    series = (m > 0) & (z.abs() <= _BETA_SERIES_Z)
    lam_plus = m + root
    nan = torch.full_like(m, math.nan)
    beta = torch.where(
        series,
        (1.0 + s) / m,
        torch.where(
            delta < 0,
            torch.atan2(root, m) / root,
            torch.where(m > 0, torch.log(lam_plus * lam_plus / d) / (2.0 * root), nan),
        ),
    )
    beta_1 = torch.where(series, (s - p) / m, beta - 1.0)

    def matrix(diag: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:  # diag I + coef C, C = A - m I
        bc = coef * c
        return torch.stack([diag + bc, coef * a12, coef * a21, diag - bc], -1).unflatten(-1, (2, 2))

    if not remainder:
        return matrix(alpha if shift is None else alpha + shift, beta)
    rem = matrix(alpha_p, beta_1)
    if shift is not None:
        eye = torch.eye(2, dtype=a.dtype, device=a.device)
        rem = torch.where(scaled[..., None, None], matrix(alpha + shift, beta) - (a - eye), rem)
    return rem


def _log_general(a: torch.Tensor, remainder: bool, method: LogMethod) -> torch.Tensor:
    """Inverse scaling and squaring for any n (see the module docstring); NaN where no real log."""
    n = a.shape[-1]
    eye = torch.eye(n, dtype=a.dtype, device=a.device)
    ok = has_real_log(a, method=method)  # (...)
    # entries beyond 2^+-16: log(2^k A) = k log 2 I + log A, so that few square roots reach I
    amax = a.abs().amax((-2, -1))
    expo = torch.where((amax > 2.0**16) | (amax < 2.0**-16), torch.frexp(amax).exponent, 0).to(a.dtype)
    y = torch.ldexp(a, -expo[..., None, None])
    y = torch.where(ok[..., None, None], y, eye)  # matrices without a log replaced by I
    s = torch.zeros(ok.shape, dtype=a.dtype, device=a.device)
    for _ in range(_MAX_SQRTS):
        far = torch.linalg.matrix_norm(y - eye) > 0.25  # (...)
        if not far.any():
            break
        y = torch.where(far[..., None, None], _sqrt_denman_beavers(y), y)
        s = s + far.to(a.dtype)
    x = y - eye
    term, higher = x, torch.zeros_like(x)  # higher: the series from its second term
    for k in range(2, _SERIES_TERMS + 1):
        term = term @ x
        higher = higher + ((-1) ** (k + 1) / k) * term
    shift = (expo * math.log(2.0))[..., None, None] * eye
    total = (x + higher) * (2.0**s)[..., None, None] + shift
    if remainder:  # with no square root taken x = A - I, so the remainder is the series past X
        total = torch.where(((s == 0) & (expo == 0))[..., None, None], higher, total - (a - eye))
    return torch.where(ok[..., None, None], total, torch.full_like(total, math.nan))


def _log(a: torch.Tensor, remainder: bool, method: LogMethod) -> torch.Tensor:
    _check_method(method)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"expected square matrices (..., n, n), got shape {tuple(a.shape)}")
    a = a.to(torch.float64)
    if method == "general" or a.shape[-1] != 2:
        return _log_general(a, remainder, method)
    ok = has_real_log(a)
    out = _log_2x2(a, remainder)
    fallback = ok & ~torch.isfinite(out).all(-1).all(-1)  # rounding at the edge of a branch
    if fallback.any():
        out[fallback] = _log_general(a[fallback], remainder, "general")
    return torch.where(ok[..., None, None], out, torch.full_like(out, math.nan))


@torch.no_grad()
def matrix_log(a: torch.Tensor, method: LogMethod = "auto") -> torch.Tensor:
    """Real principal logarithm of real matrices a (..., n, n), float64; NaN where none exists.

    method "auto": the closed form for 2 x 2 (`_log_2x2`), inverse scaling and squaring otherwise;
    "general": inverse scaling and squaring for every size.
    """
    return _log(a, False, method)


@torch.no_grad()
def matrix_log_remainder(a: torch.Tensor, method: LogMethod = "auto") -> torch.Tensor:
    """log A - (A - I) for real matrices a (..., n, n), float64; NaN where no real log exists.

    Formed without subtracting the two: for 2 x 2 (method "auto") from the closed form's
    identity-relative coefficients, otherwise as the series of log(I + X) past X when no square
    root was taken (|A - I|_F <= 1/4), so a tiny remainder near I keeps its relative accuracy.
    """
    return _log(a, True, method)


@torch.no_grad()
def lie_rows(model: LayeredNetwork, jac: torch.Tensor, method: LogMethod = "auto") -> list[dict[str, Any]]:
    """Rows of lie.csv from the layer Jacobians jac (L, N, m, m) of `model` at the data points.

    For kinds near the identity (residual: J_l = I + h D W_l), h A_l = J_l - I, so the log
    columns report log J_l - (J_l - I) (`matrix_log_remainder`, with `method`).
    """
    L, _, m, _ = jac.shape
    eye = torch.eye(m, dtype=jac.dtype, device=jac.device)
    det = torch.linalg.det(jac)  # (L, N)
    dist = torch.linalg.matrix_norm(jac - eye)  # (L, N)
    log_err = None
    if model.kind.near_identity:
        # log J_l - h A_l with h A_l = h D W_l = J_l - I: (L, N), NaN where no log
        log_err = torch.linalg.matrix_norm(matrix_log_remainder(jac, method))
    rows = []
    for layer in range(L):
        row: dict[str, Any] = {
            "layer": layer,
            "det_mean": float(det[layer].mean()),
            "det_min": float(det[layer].min()),
            "det_positive_fraction": float((det[layer] > 0).to(torch.float64).mean()),
            "identity_distance_mean": float(dist[layer].mean()),
            "log_error_mean": None,
            "log_defined_fraction": None,
        }
        if log_err is not None:
            defined = ~torch.isnan(log_err[layer])
            row["log_defined_fraction"] = float(defined.to(torch.float64).mean())
            row["log_error_mean"] = float(log_err[layer][defined].mean()) if defined.any() else math.nan
        rows.append(row)
    return rows


def lie_table(model: LayeredNetwork, x: torch.Tensor, method: LogMethod = "auto") -> list[dict[str, Any]]:
    """One row per layer for input points x (N, 2); see the module docstring for the columns."""
    coords = layer_coordinates(model, x)  # (L+1, N, w)
    return lie_rows(model, layer_jacobians(model, coords), method)


__all__ = ["LogMethod", "has_real_log", "lie_rows", "lie_table", "matrix_log", "matrix_log_remainder"]
