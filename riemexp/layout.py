"""The names of the files and folders in a run folder, in one place.

config.yaml     the resolved config
metrics.json    status, scores, versions and analysis figures
history.csv     per-epoch train and test loss and accuracy
model.pt        weights, resolved config, class names
geometry.npz    coordinates and metric tensors of every layer (`riemexp.geometry`)
tables/         layers, ode and lie tables, as CSV and Markdown
plots/          the figures (`riemexp.plotting`)
"""

from __future__ import annotations

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.pt"
GEOMETRY_FILE = "geometry.npz"
TABLES_DIR = "tables"
PLOTS_DIR = "plots"

#: what a training run writes after its config and metrics; a new run into an existing
#: folder removes these first, so that no file of an earlier run passes for one of this run
RUN_ARTIFACTS = (HISTORY_FILE, MODEL_FILE, GEOMETRY_FILE, TABLES_DIR, PLOTS_DIR)
