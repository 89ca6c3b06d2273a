"""Runs: train and analyse into a run folder (`run`), read a completed one back (`load_run`).

    riemexp.runner.execute   `run(cfg, out_dir)`: lock, record, train, analyse, complete
    riemexp.runner.folder    the earlier run in the folder: kept, replaced, swapped; the disk reserve
    riemexp.runner.record    metrics.json's scores and stop records, history.csv, the summary
    riemexp.runner.load      model.pt written and read, metrics.json read, `load_run` / `LoadedRun`
    riemexp.runner.members   an ensemble's members' records in their run folders while it trains

`from riemexp import run, load_run` gives the two functions.
"""

from riemexp.runner.execute import run
from riemexp.runner.load import LoadedRun, load_run, read_input_scale, read_metrics, read_model_file
from riemexp.runner.record import recorded_in, versions

__all__ = [
    "LoadedRun",
    "load_run",
    "read_input_scale",
    "read_metrics",
    "read_model_file",
    "recorded_in",
    "run",
    "versions",
]
