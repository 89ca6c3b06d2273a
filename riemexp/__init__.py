"""riemexp: the Riemannian geometry of neural networks (Hauser & Ray, NeurIPS 2017), measured.

Public surface:
    RunConfig and its parts      typed configuration (riemexp.config)
    make_dataset                 toy datasets (riemexp.datasets)
    build_network                a network of any registered kind (riemexp.nets)
    run, load_run                train into a run folder, read one back (riemexp.runner)
    load_sweep                   a sweep's summary as records or a DataFrame (riemexp.notebook)

The names are imported on first use, so that `import riemexp` (and the `riemexp` command's
start, where Ctrl-C must already be handled) does not wait for torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "DatasetConfig": "riemexp.config",
    "GeometryConfig": "riemexp.config",
    "NetworkConfig": "riemexp.config",
    "OdeConfig": "riemexp.config",
    "OptimConfig": "riemexp.config",
    "PlotConfig": "riemexp.config",
    "RunConfig": "riemexp.config",
    "load_config": "riemexp.config",
    "Dataset": "riemexp.datasets",
    "make_dataset": "riemexp.datasets",
    "LayeredNetwork": "riemexp.nets.network",
    "build_network": "riemexp.nets.network",
    "LoadedRun": "riemexp.runner",
    "load_run": "riemexp.runner",
    "run": "riemexp.runner",
    "load_sweep": "riemexp.notebook",
}


class _Package(types.ModuleType):
    """The riemexp package: public names imported when first asked for."""

    def __getattr__(self, name: str) -> Any:
        if name not in _EXPORTS:
            raise AttributeError(f"module 'riemexp' has no attribute '{name}'")
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        self.__dict__[name] = value
        return value

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_EXPORTS})


sys.modules[__name__].__class__ = _Package

__all__ = sorted([*_EXPORTS, "__version__"])
