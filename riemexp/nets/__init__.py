"""Network kinds, one file each, and the registry that names them (torch-free).

riemexp.nets.kind       what a kind states (`Kind`) and what riemexp derives from it
riemexp.nets.plain      x_{l+1} = sigma(W_l x_l + b_l)
riemexp.nets.residual   x_{l+1} = x_l + h sigma(W_l x_l + b_l)
riemexp.nets.c2         x_{l+1} = 2 x_l - x_{l-1} + h^2 sigma(W_l x_l + b_l)
riemexp.nets.registry   name -> kind: `register`, `get_kind`, `kind_names`
riemexp.nets.network    `LayeredNetwork`, the torch module of any kind (imports torch)
"""

from riemexp.nets.kind import Coefficients, Kind
from riemexp.nets.registry import KINDS, get_kind, kind_names, register, unregister

__all__ = ["KINDS", "Coefficients", "Kind", "get_kind", "kind_names", "register", "unregister"]
