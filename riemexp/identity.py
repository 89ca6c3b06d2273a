"""A run's identity: which experiment a run folder's results belong to.

The identity is a hash of the resolved config (every value, in a canonical JSON form) and,
for a CSV dataset, the sha256 of the file's contents:

    identity = sha256(canonical_json(config) + "\\n" + (dataset_sha256 or ""))[:16]

`riemexp.runner` stores it in `model.pt` and `metrics.json`; sweep resume and aggregation trust a
job folder only when both agree with the identity of the job's own config, so that results
written by another configuration (an orphaned worker, an earlier grid) never pass for this one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from riemexp.config import RunConfig, config_to_dict, legacy_values

IDENTITY_KEY = "run_identity"
IDENTITY_LENGTH = 16  # hex digits: 64 bits, ample for the runs of one folder


def canonical_json(values: Any) -> str:
    """A stable text form of plain config values: sorted keys, no spaces, exact floats."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=True)


def identity_of(config_values: Any, dataset_sha256: str | None) -> str:
    """The identity of a config given as plain values (e.g. read from a saved config.yaml)."""
    text = canonical_json(config_values) + "\n" + (dataset_sha256 or "")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:IDENTITY_LENGTH]


def run_identity(cfg: RunConfig, dataset_sha256: str | None = None) -> str:
    """The identity of a run of `cfg`; `dataset_sha256` is the CSV's hash (None for toy sets)."""
    return identity_of(config_to_dict(cfg), dataset_sha256)


def legacy_identity(cfg: RunConfig, dataset_sha256: str | None = None) -> str:
    """The identity a run of `cfg` had when riemexp saved every dataset's and optimizer's options in
    one flat section (`riemexp.config.legacy_values`), so that a sweep folder written then is
    resumed, not run again."""
    return identity_of(legacy_values(cfg), dataset_sha256)


def identities(cfg: RunConfig, dataset_sha256: str | None = None) -> tuple[str, str]:
    """(identity, legacy identity) of a run of `cfg`: a completed run of either is a run of cfg."""
    return run_identity(cfg, dataset_sha256), legacy_identity(cfg, dataset_sha256)


__all__ = ["IDENTITY_KEY", "canonical_json", "identities", "identity_of", "legacy_identity", "run_identity"]
