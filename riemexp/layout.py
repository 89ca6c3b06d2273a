"""The names of the files and folders in a run folder, in one place.

config.yaml     the resolved config
metrics.json    status, scores, versions and analysis figures
history.csv     per-epoch train and test loss and accuracy
model.pt        weights, resolved config, class names
geometry.npz    coordinates and metric tensors of every layer (`riemexp.analyses.geometry`)
ode.npz         the ODE flow of the points the trajectories figure draws (`riemexp.analyses.ode`)
snapshots.npz   g_0, class probabilities and scores on the grid during training (`riemexp.analyses.snapshots`)
tables/         layers, ode and lie tables, as CSV and Markdown
plots/          the figures (`riemexp.analyses.plots`)
unfinished-rerun/   the record (metrics.json, history.csv, config.yaml, .hydra/) of the latest
                    re-run into this folder that did not complete; the completed run stays
.riemexp.lock   present while a run works in the folder (`riemexp.lock`), with
.riemexp.reserve    64 KiB kept free for the run's final record on a disk that fills up
report.md       config, headline numbers, figures and tables on one page (`riemexp.report`)
tensorboard/    TensorBoard event files, with logger=tensorboard (`riemexp.loggers`)
"""

from __future__ import annotations

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.pt"
GEOMETRY_FILE = "geometry.npz"
ODE_FILE = "ode.npz"
SNAPSHOTS_FILE = "snapshots.npz"
TABLES_DIR = "tables"
PLOTS_DIR = "plots"
REPORT_FILE = "report.md"
TENSORBOARD_DIR = "tensorboard"

UNFINISHED_RERUN_DIR = "unfinished-rerun"
#: Hydra's own record of a run (Hydra writes it); a re-run into a completed run's folder has
#: Hydra write it aside, into .hydra-next/, until the new run has completed
HYDRA_DIR = ".hydra"
HYDRA_NEXT_DIR = ".hydra-next"

#: what a training run writes after its config and metrics; a folder that holds any of these
#: but no readable metrics.json is not a riemexp run, and a run into it is refused
RUN_ARTIFACTS = (
    HISTORY_FILE,
    MODEL_FILE,
    GEOMETRY_FILE,
    ODE_FILE,
    SNAPSHOTS_FILE,
    TABLES_DIR,
    PLOTS_DIR,
    REPORT_FILE,
    TENSORBOARD_DIR,
)

#: what a completed re-run swaps into its folder, replacing the earlier run's (metrics.json last)
RUN_FILES = (CONFIG_FILE, *RUN_ARTIFACTS, UNFINISHED_RERUN_DIR)

#: hidden folders a run makes beside its files: the new run of a re-run, the earlier run's files
#: on their way out; left behind only by a killed run, and removed by the next run into the folder
STAGING_PREFIX = ".staging-"
#: a hidden file that keeps room on the disk for a run's final record (removed when it ends)
RESERVE_FILE = ".riemexp.reserve"
REPLACED_PREFIX = ".replaced-"

#: folders that riemexp's tools write under outputs/ that hold copies of run files, not runs
#: (the embedded MLflow store's artifacts): `riemexp ls` and `plot-metric` do not look inside
NOT_RUN_FOLDERS = ("mlflow-artifacts", "mlruns")
