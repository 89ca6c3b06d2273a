"""The phases of a run, announced: in the log, in metrics.json ("phase"), and to fault tests.

`riemexp.runner.run` records each phase in metrics.json and calls `reached(name)` as it enters it:

    setup      the folder is locked, the dataset is being made and memory checked
    training   the first epoch starts
    epoch      the first epoch has finished (announced once; not recorded)
    saving     history.csv and model.pt are being written
    geometry, ode, plots     the analysis steps

An ensemble of a sweep (hydra/launcher=ensemble, `riemexp.sweep.ensemble.train_group`)
announces `training` when it starts, `epoch` when its first epoch has finished and `measuring`
when its members' ODE tables are measured together, after training. `riemexp
plot-metric` announces `drawn` when its figures are drawn, before they replace
the old ones. (Completing is no phase: from the moment a run has every file, a signal waits
until the run is in its folder, `riemexp.signals.deferred`.)

Two environment variables let a test stop a run at a chosen phase without timing anything:
RIEMEXP_PHASE_LOG=FILE appends each phase's name to FILE as it starts (a test waits for the
line, then sends its signal), and RIEMEXP_PHASE_HOLD=NAME makes the run wait at the start of
phase NAME until a signal stops it. Neither changes anything else.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("riemexp")

LOG_ENV = "RIEMEXP_PHASE_LOG"
HOLD_ENV = "RIEMEXP_PHASE_HOLD"


def reached(name: str) -> None:
    """Announce phase `name` (see the module docstring)."""
    log.debug("phase: %s", name)
    marker = os.environ.get(LOG_ENV)
    if marker:
        with open(marker, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    if os.environ.get(HOLD_ENV) == name:
        while True:  # until a signal (Interrupted) ends the wait
            time.sleep(0.05)


__all__ = ["HOLD_ENV", "LOG_ENV", "reached"]
