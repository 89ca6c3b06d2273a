"""`riemexp plot-metric [run=PATH] [OVERRIDES]`: re-draw a saved run's figures without retraining.

Options come from conf/plot_metric.yaml, composed with Hydra's compose API (so no Hydra
output folder is made); null options keep the run's own values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from riemexp.cli import conf_dir
from riemexp.commands.hydra_app import compose_config
from riemexp.errors import ConfigError, RunFolderError
from riemexp.layout import METRICS_FILE, NOT_RUN_FOLDERS
from riemexp.report import write_run_report

OUTPUTS = Path("outputs")
PLOT_KEYS = ("layers", "n_layers", "glyph_density", "glyph", "formats", "animation")

USAGE = """\
riemexp plot-metric: re-draw the figures of a saved run (layer row, input space, training
curves, optional GIF) from its geometry.npz and model.pt, without retraining.

usage: riemexp plot-metric [run=]PATH [out=DIR] [grid_density=N] [plot.KEY=VALUE ...]

With no options the run's own plots/ are reproduced file for file. If the saved geometry
is coarser than asked (grid_density, plot.glyph_density), it is recomputed from model.pt.

== Config (conf/plot_metric.yaml) ==
{config}
Examples:
  riemexp plot-metric                                   # the latest completed run in ./outputs/
  riemexp plot-metric run=outputs/2024-05-01/12-00-00_spirals_residual plot.formats=[png,pdf]
  riemexp plot-metric run=RUN plot.layers=[0,2,4,6,8,10] plot.glyph=unit_ball out=figs
  riemexp plot-metric run=RUN plot.glyph_density=25 grid_density=80 plot.animation=true
"""


@dataclass(frozen=True)
class Options:
    run: Path | None
    out: Path | None
    grid_density: int | None
    plot: dict[str, Any]


def parse_options(values: dict[str, Any]) -> Options:
    """Check the composed plot_metric config; ConfigError names a bad value."""
    for key in ("run", "out"):
        if values.get(key) is not None and not isinstance(values[key], str):
            raise ConfigError(f"{key} must be a folder path, got {values[key]!r}")
    density = values.get("grid_density")
    if density is not None and (isinstance(density, bool) or not isinstance(density, int) or density < 2):
        raise ConfigError(f"grid_density must be an integer >= 2 or null, got {density!r}")
    plot = dict(values.get("plot") or {})
    return Options(
        run=Path(values["run"]) if values.get("run") else None,
        out=Path(values["out"]) if values.get("out") else None,
        grid_density=density,
        plot={k: plot.get(k) for k in PLOT_KEYS},
    )


def latest_run(outputs: Path = OUTPUTS) -> Path:
    """The most recently finished completed run folder under outputs/ (by metrics.json's mtime)."""
    runs = []
    for metrics in outputs.glob(f"**/{METRICS_FILE}") if outputs.is_dir() else ():
        parts = metrics.relative_to(outputs).parts
        if any(part.startswith(".") or part in NOT_RUN_FOLDERS for part in parts):
            continue  # a run's hidden staging folder; copies of run files (MLflow's artifacts)
        try:
            status = json.loads(metrics.read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            continue
        if status == "completed":
            runs.append((metrics.stat().st_mtime, metrics.parent))
    if not runs:
        raise RunFolderError(
            f"no completed run found under {outputs.resolve()}; pass a run folder with run=PATH"
        )
    return max(runs)[1]


def main(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(USAGE.format(config=(conf_dir() / "plot_metric.yaml").read_text()))
        return 0
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise ConfigError(f"unknown option {flags[0]}; expected KEY=VALUE overrides (see --help)")
    bare = [a for a in args if "=" not in a]
    if bare:
        # `riemexp plot-metric RUN` is read as run=RUN
        if len(bare) > 1 or any(a.startswith("run=") for a in args):
            raise ConfigError(
                f"unexpected argument '{bare[-1]}'; expected KEY=VALUE overrides, e.g. run=PATH (see --help)"
            )
        args = [f"run={bare[0]}" if a == bare[0] else a for a in args]
    values = OmegaConf.to_container(compose_config("plot_metric", args), resolve=True)
    assert isinstance(values, dict)
    options = parse_options({str(k): v for k, v in values.items()})
    run_dir = options.run if options.run is not None else latest_run()
    from riemexp.analyses.plots import redraw_run

    written = redraw_run(run_dir, options.plot, options.grid_density, options.out)
    written.append(write_run_report(run_dir))
    folders = sorted({str(p.parent) for p in written})
    print(f"wrote {len(written)} files to {', '.join(folders)}: {', '.join(p.name for p in written)}")
    return 0
