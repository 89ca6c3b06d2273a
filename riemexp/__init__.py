"""riemexp: the Riemannian geometry of neural networks (Hauser & Ray, NeurIPS 2017), measured.

Public surface:
    RunConfig and its parts      typed configuration (riemexp.config)
    make_dataset                 toy datasets (riemexp.datasets)
    build_network                plain, residual and c2 networks (riemexp.networks)
    run, load_run                train into a run folder, read one back (riemexp.run)
"""

__version__ = "0.1.0"

from riemexp.config import (  # noqa: E402
    DatasetConfig,
    GeometryConfig,
    NetworkConfig,
    OdeConfig,
    OptimConfig,
    PlotConfig,
    RunConfig,
    load_config,
)
from riemexp.datasets import Dataset, make_dataset  # noqa: E402
from riemexp.networks import LayeredNetwork, build_network  # noqa: E402
from riemexp.run import LoadedRun, load_run, run  # noqa: E402

__all__ = [
    "Dataset",
    "DatasetConfig",
    "GeometryConfig",
    "LayeredNetwork",
    "LoadedRun",
    "NetworkConfig",
    "OdeConfig",
    "OptimConfig",
    "PlotConfig",
    "RunConfig",
    "__version__",
    "build_network",
    "load_config",
    "load_run",
    "make_dataset",
    "run",
]
