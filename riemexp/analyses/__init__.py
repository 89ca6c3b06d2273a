"""The analysis steps of a run: each reads the trained run and writes its own files into the run folder.

    geometry   geometry.npz, tables/layers.csv|md                  (geometry.enabled)
    ode        tables/ode.csv|md, ode.npz                          (ode.enabled; kinds with an ODE)
    plots      plots/: layer row, input space, training curves, trajectories, ODE convergence, GIF
                                                                   (plot.enabled)
    lie        tables/lie.csv|md                                   (always)

    certificate  metrics.json: what the weights prove about invertibility (always; per layer in layers.csv)
    topology   metrics.json: the noise-free disc and ring (dataset=circles)

`ANALYSES` lists them in run order as (name, "module:function", enabled(cfg)); the run
(riemexp.runner) calls each enabled step with a `RunContext`, as phase and timed stage `name`.
The plots step hands its figures to the run's `FigurePool` (riemexp.figures), which draws them in
parallel where the run may use several CPUs; the Lie table comes after it so that it is computed
while they are drawn, and the run waits for every figure before it completes.
The maths lives in riemexp.geometry and riemexp.ode (no files there); the figures in
riemexp.plotting (arrays in, figures out). Adding a figure touches riemexp.plotting and the step
that saves what it is drawn from (`riemexp plot-metric` re-draws it from those files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riemexp.config import RunConfig
from riemexp.figures import FigurePool

if TYPE_CHECKING:
    from riemexp.data.dataset import Dataset
    from riemexp.nets.network import LayeredNetwork


@dataclass
class RunContext:
    """What an analysis step gets: the trained model (cpu, eval mode) and its run folder.

    Steps write their own files into `out_dir` and add scalars to `metrics`.
    """

    cfg: RunConfig
    out_dir: Path
    model: LayeredNetwork
    data: Dataset
    metrics: dict[str, Any]
    #: draws the run's figures, in parallel when the run may use several CPUs (riemexp.figures);
    #: steps submit each figure once its arrays are made, and the run waits for them at the end
    figures: FigurePool = field(default_factory=FigurePool)
    #: results computed before the run, by analysis name (an ensemble's member: `MemberResult.analyses`),
    #: which that analysis's step writes instead of computing them again
    precomputed: dict[str, Any] = field(default_factory=dict)


#: Analysis steps run after training, in order: (name, "module:function", enabled(cfg)).
ANALYSES: list[tuple[str, str, Callable[[RunConfig], bool]]] = [
    # first: it starts drawing the snapshot figures, in parallel with the steps after it
    ("boundary", "riemexp.analyses.snapshots:boundary_step", lambda cfg: cfg.geometry.enabled),
    ("certificate", "riemexp.analyses.certificate:certificate_step", lambda cfg: True),
    ("geometry", "riemexp.analyses.geometry:geometry_step", lambda cfg: cfg.geometry.enabled),
    ("ode", "riemexp.analyses.ode:ode_step", lambda cfg: cfg.ode.enabled),
    ("topology", "riemexp.analyses.topology:topology_step", lambda cfg: cfg.dataset.name == "circles"),
    ("plots", "riemexp.analyses.plots:plots_step", lambda cfg: cfg.plot.enabled),
    ("lie", "riemexp.analyses.lie:lie_step", lambda cfg: True),
]

__all__ = ["ANALYSES", "RunContext"]
