"""2-D datasets: toy sets generated in memory from a seed, and the user's own CSV file.

    base.py      DatasetConfig (the options every dataset has), Source (how one is made)
    toy.py       spirals, circles, moons, xor, gaussians: their configs and generators
    csv.py       the user's CSV file: its config, reading and checking it (no torch)
    registry.py  the datasets by name (DATASETS, register)
    dataset.py   Dataset and make_dataset: made, split, standardised (torch)

Adding a dataset is one file and one line in registry.py. The names below are imported on
first use, so that configs load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "DatasetConfig": "riemexp.data.base",
    "MIN_SAMPLES": "riemexp.data.base",
    "Source": "riemexp.data.base",
    "check_split": "riemexp.data.base",
    "GeneratedConfig": "riemexp.data.toy",
    "SpiralsConfig": "riemexp.data.toy",
    "CirclesConfig": "riemexp.data.toy",
    "MoonsConfig": "riemexp.data.toy",
    "XorConfig": "riemexp.data.toy",
    "GaussiansConfig": "riemexp.data.toy",
    "Generated": "riemexp.data.toy",
    "CsvConfig": "riemexp.data.csv",
    "parse_csv": "riemexp.data.csv",
    "read_csv": "riemexp.data.csv",
    "DATASETS": "riemexp.data.registry",
    "register": "riemexp.data.registry",
    "fingerprint": "riemexp.data.registry",
    "Dataset": "riemexp.data.dataset",
    "make_dataset": "riemexp.data.dataset",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'riemexp.data' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = sorted(_EXPORTS)
