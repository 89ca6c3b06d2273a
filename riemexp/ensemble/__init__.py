"""Batched ensembles: many small networks of one shape trained as one, each exactly as if alone.

riemexp's networks are tiny (width 2, a few dozen layers), so a training step is mostly the
cost of launching operations on 2 x 2 matrices. Stacking K networks of the same kind, width,
depth and activation along a leading member axis makes a step cost little more for K = 100
than for K = 1. Each member keeps its own seed, data, step size h, learning rate, weight decay,
momentum, epochs and optimizer state, and ends with the weights, history and scores that
`riemexp.train.train` gives the same run alone (bit for bit on the cpu for width and classes
up to 3; see `riemexp.ensemble.network`).

    from riemexp.ensemble import train_ensemble, split_ensemble

    ensemble = train_ensemble([RunConfig(seed=s) for s in range(100)])
    for member in split_ensemble(ensemble):      # K ordinary results
        member.model, member.history, member.final, member.status

Grouping runs that can share an ensemble: `ensemble_key`, `group_members`.
"""

from riemexp.ensemble.members import (
    EnsembleKey,
    check_members,
    ensemble_key,
    group_members,
    member_datasets,
)
from riemexp.ensemble.network import StackedNetwork
from riemexp.ensemble.train import MemberResult, TrainedEnsemble, split_ensemble, train_ensemble

__all__ = [
    "EnsembleKey",
    "MemberResult",
    "StackedNetwork",
    "TrainedEnsemble",
    "check_members",
    "ensemble_key",
    "group_members",
    "member_datasets",
    "split_ensemble",
    "train_ensemble",
]
