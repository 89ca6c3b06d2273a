"""riemexp: the Riemannian geometry of neural networks (Hauser & Ray, NeurIPS 2017), measured.

Public surface:
    RunConfig and its parts      typed configuration (riemexp.config; one config class per
                                 dataset, e.g. MoonsConfig, and per optimizer, e.g. SgdConfig)
    make_dataset                 the datasets: generated toy sets and CSV files (riemexp.data)
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
    "GeometryConfig": "riemexp.config",
    "NetworkConfig": "riemexp.config",
    "OdeConfig": "riemexp.config",
    "OptimConfig": "riemexp.config",
    "AdamConfig": "riemexp.config",
    "SgdConfig": "riemexp.config",
    "PlotConfig": "riemexp.config",
    "RunConfig": "riemexp.config",
    "load_config": "riemexp.config",
    "DatasetConfig": "riemexp.data.base",
    "SpiralsConfig": "riemexp.data.toy",
    "CirclesConfig": "riemexp.data.toy",
    "MoonsConfig": "riemexp.data.toy",
    "XorConfig": "riemexp.data.toy",
    "GaussiansConfig": "riemexp.data.toy",
    "CsvConfig": "riemexp.data.csv",
    "Dataset": "riemexp.data.dataset",
    "make_dataset": "riemexp.data.dataset",
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
