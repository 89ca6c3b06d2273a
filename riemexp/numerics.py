"""Numbers of float64 arithmetic that the geometry and the figures share (torch-free).

SINGULAR_RTOL: a metric with lambda_min <= SINGULAR_RTOL * lambda_max is singular to float64
precision. The rounding error of a computed g is about eps * lambda_max, so smaller eigenvalues are
noise: its log volume element is -inf and its anisotropy inf (riemexp.geometry.scalars), and the
figures draw it as degenerate (riemexp.plotting.glyphs).
"""

SINGULAR_RTOL = 1e-12

__all__ = ["SINGULAR_RTOL"]
