"""report.md: a run or a sweep on one page, to paste into a lab notebook or push to a repository.

A run's report (`write_run_report`): a title naming the dataset and network, the status, the
headline numbers (accuracies, losses, the input metric's log volume element and anisotropy,
the ODE gap), the configuration in a short table (the values that shape the experiment; the
whole resolved config is config.yaml beside it), every figure of plots/ embedded by relative
path, and every table of tables/ (its Markdown, with a link to its CSV).

A sweep's report (`write_sweep_report`): the jobs' status, the swept values and the values all
jobs share, the best configuration by mean test accuracy, the grouped table (mean ± std over
seeds), the sweep's figures, and the per-job table.

Both are written atomically from the files of the folder alone (no model, no torch), so that
`riemexp plot-metric` and `riemexp sweep aggregate` rewrite them whenever they redraw.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from riemexp.io import atomic_write_text
from riemexp.layout import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, PLOTS_DIR, REPORT_FILE, TABLES_DIR
from riemexp.nets.registry import uses_step_size
from riemexp.tables import format_value, markdown_table

#: headline numbers of a run: (metrics.json key, label)
HEADLINE = (
    ("test_accuracy", "test accuracy"),
    ("train_accuracy", "train accuracy"),
    ("test_loss", "test loss (cross-entropy)"),
    ("train_loss", "train loss (cross-entropy)"),
    ("input_log_volume_median", "input log volume element, median over the data"),
    ("input_anisotropy_median", "input anisotropy (largest / smallest eigenvalue of g), median"),
    ("boundary_spearman_grid", "Spearman correlation of log volume and distance to the boundary, grid"),
    ("boundary_band_ratio_grid", "median volume element near the boundary / away from it, grid"),
    ("boundary_spearman_data", "Spearman correlation of log volume and distance to the boundary, data"),
    ("boundary_band_ratio_data", "median volume element near the boundary / away from it, data"),
    ("ode_gap", "ODE gap (k = 1 error / spread of the reference)"),
    ("ode_order", "refinement order of the ODE error"),
    ("epochs", "epochs"),
    ("train_seconds", "training time (s)"),
)

#: the config values shown in a report's table, in this order; DATASET_ROWS stands for the options
#: of the run's own dataset (its config class's, riemexp.data), in the order of its config
DATASET_ROWS = "dataset.*"
CONFIG_ROWS = (
    DATASET_ROWS,
    "network.kind",
    "network.depth",
    "network.width",
    "network.step_size",
    "network.activation",
    "optim.name",
    "optim.lr",
    "optim.epochs",
    "optim.batch_size",
    "optim.weight_decay",
    "seed",
    "device",
)
#: dataset options not shown (the data seed is the run's seed unless set)
DATASET_HIDDEN = ("dataset.seed",)

#: what each figure of a run shows (plots/STEM.png)
FIGURE_CAPTIONS = {
    "layers": "The data, a deformed grid and the metric glyphs, layer by layer",
    "input_space": "The input space: decision regions, log volume element, glyphs of the pulled-back metric",
    "training_curves": "Training curves: loss and accuracy per epoch",
    "trajectories": "The points' trajectories through the layers, beside the network's ODE",
    "ode_convergence": "ODE convergence: the error against the ODE, each layer refined into k sub-steps",
    "layers.gif": "The layers as an animation",
}

#: what each table of a run holds (tables/STEM.md)
TABLE_CAPTIONS = {
    "layers": "Per layer: log volume element and anisotropy of the metric g_l, the step to the next layer",
    "ode": "The network against its ODE: error and observed order as each layer is refined into k sub-steps",
    "lie": "Each layer's Jacobian: determinant, distance from the identity, how well a matrix logarithm fits",
}


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"network": {"depth": 4}} -> {"network.depth": 4}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return values if isinstance(values, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def _cell(value: Any) -> str:
    text = format_value(value, 4) if not isinstance(value, (list, tuple)) else str(list(value))
    return text.replace("|", "\\|") or "–"


def _dataset_keys(config: Mapping[str, Any]) -> list[str]:
    """The dataset options of a flattened config that apply to its dataset (a config saved before
    each dataset had its own class lists every dataset's options)."""
    from riemexp.data.registry import DATASETS

    source = DATASETS.get(str(config.get("dataset.name")))
    own = None if source is None else {f"dataset.{k}" for k in source.config.option_names()}
    return [
        k
        for k in config
        if k.startswith("dataset.") and k not in DATASET_HIDDEN and (own is None or k in own)
    ]


def config_rows(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The shown config values of a flattened config, as rows {setting, value}."""
    kind = config.get("network.kind")
    rows = []
    for key in [k for row in CONFIG_ROWS for k in (_dataset_keys(config) if row == DATASET_ROWS else [row])]:
        if key not in config:
            continue
        if key == "network.step_size" and not uses_step_size(str(kind)):
            continue
        if key == "optim.batch_size" and config[key] is None:
            rows.append({"setting": key, "value": "full batch"})
            continue
        rows.append({"setting": key, "value": _cell(config[key])})
    return rows


def _figures(folder: Path, prefix: str = "") -> list[str]:
    """Markdown that embeds each figure of folder/plots/ by relative path: PNG (else SVG), then GIFs."""
    plots = folder / PLOTS_DIR
    if not plots.is_dir():
        return []
    files = {p.name: p for p in plots.iterdir() if p.is_file()}
    stems = sorted({p.stem for p in files.values() if p.suffix in (".png", ".svg", ".pdf")})
    order = list(FIGURE_CAPTIONS)
    stems.sort(key=lambda s: (order.index(s) if s in order else len(order), s))
    lines = []
    for stem in stems:
        shown = next((files[f"{stem}{ext}"] for ext in (".png", ".svg") if f"{stem}{ext}" in files), None)
        caption = FIGURE_CAPTIONS.get(stem, stem.replace("_", " "))
        if shown is None:  # a PDF only: a link
            lines += [f"- [{caption}]({prefix}{PLOTS_DIR}/{stem}.pdf)", ""]
            continue
        others = [
            f"[{ext[1:]}]({prefix}{PLOTS_DIR}/{stem}{ext})"
            for ext in (".pdf", ".svg")
            if f"{stem}{ext}" in files and f"{stem}{ext}" != shown.name
        ]
        lines += [
            f"**{caption}** (`{PLOTS_DIR}/{shown.name}`{'; ' + ', '.join(others) if others else ''})",
            "",
            f"![{caption}]({prefix}{PLOTS_DIR}/{shown.name})",
            "",
        ]
    for gif in sorted(p for p in files.values() if p.suffix == ".gif"):
        caption = FIGURE_CAPTIONS.get(gif.name, gif.stem.replace("_", " "))
        lines += [
            f"**{caption}** (`{PLOTS_DIR}/{gif.name}`)",
            "",
            f"![{caption}]({prefix}{PLOTS_DIR}/{gif.name})",
            "",
        ]
    return lines


def _tables(folder: Path) -> list[str]:
    """Each tables/NAME.md inline under a heading, with links to its CSV (and LaTeX)."""
    tables = folder / TABLES_DIR
    lines: list[str] = []
    for md in sorted(tables.glob("*.md")) if tables.is_dir() else ():
        links = [
            f"[{ext}]({TABLES_DIR}/{md.stem}.{ext})"
            for ext in ("csv", "tex")
            if (tables / f"{md.stem}.{ext}").is_file()
        ]
        caption = TABLE_CAPTIONS.get(md.stem)
        lines += [f"### {md.stem}" + (f" ({', '.join(links)})" if links else ""), ""]
        lines += [caption + ".", ""] if caption else []
        lines += [md.read_text().rstrip(), ""]
    return lines


def run_report(folder: Path, metrics: Mapping[str, Any] | None = None) -> str:
    """The Markdown of a run folder's report (metrics: metrics.json's values, read when None)."""
    folder = Path(folder)
    metrics = dict(metrics) if metrics is not None else _read_json(folder / METRICS_FILE)
    config = flatten(_read_yaml(folder / CONFIG_FILE))
    status = str(metrics.get("status", "unknown"))
    dataset, kind = (
        config.get("dataset.name", metrics.get("dataset")),
        config.get("network.kind", metrics.get("network")),
    )
    title = f"# {dataset}, {kind} network"
    if "network.depth" in config:
        title += f" of depth {config['network.depth']} and width {config.get('network.width')}"
    facts = [f"status **{status}**"]
    facts += [
        f"{label} {metrics[key]}" for key, label in (("epochs", "epochs"), ("seed", "seed")) if key in metrics
    ]
    if metrics.get("run_identity"):
        facts.append(f"run identity `{metrics['run_identity']}`")
    if metrics.get("riemexp_version"):
        facts.append(f"riemexp {metrics['riemexp_version']}, torch {metrics.get('torch_version', '?')}")
    lines = [title, "", f"Run folder `{folder.name}`: " + ", ".join(facts) + ".", ""]
    if metrics.get("error"):
        lines += [f"> **{status}**: {metrics['error']}", ""]
    if metrics.get("near_chance") and metrics.get("warning"):
        lines += [f"> **near chance**: {metrics['warning']}", ""]
    results = [
        {"result": label, "value": _cell(metrics[key])}
        for key, label in HEADLINE
        if metrics.get(key) is not None
    ]
    if results:
        lines += ["## Results", "", markdown_table(results, ["result", "value"]).rstrip(), ""]
    rows = config_rows(config)
    if rows:
        lines += [
            "## Configuration",
            "",
            markdown_table(rows, ["setting", "value"]).rstrip(),
            "",
            f"The whole resolved configuration is [{CONFIG_FILE}]({CONFIG_FILE}); per-epoch losses and "
            f"accuracies are in [{HISTORY_FILE}]({HISTORY_FILE}), every number in "
            f"[{METRICS_FILE}]({METRICS_FILE}).",
            "",
        ]
    figures = _figures(folder)
    if figures:
        lines += ["## Figures", "", *figures]
    tables = _tables(folder)
    if tables:
        lines += ["## Tables", "", *tables]
    return "\n".join(lines).rstrip() + "\n"


def write_run_report(folder: str | Path, metrics: Mapping[str, Any] | None = None) -> Path:
    """Write FOLDER/report.md (atomically); return its path."""
    folder = Path(folder)
    path = folder / REPORT_FILE
    atomic_write_text(path, run_report(folder, metrics))
    return path


# --------------------------------------------------------------------------- sweeps


def _mean_std(row: Mapping[str, Any], metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "–"
    return format_value(mean, 4) + ("" if std is None else f" ± {format_value(std, 2)}")


#: the grouped columns shown in a sweep's report: (metric, title)
SWEEP_COLUMNS = (
    ("test_accuracy", "test accuracy"),
    ("train_accuracy", "train accuracy"),
    ("input_log_volume_median", "input log volume (median)"),
    ("boundary_spearman_grid", "Spearman(log volume, boundary distance)"),
    ("boundary_band_ratio_grid", "band ratio"),
    ("ode_gap", "ODE gap"),
)
#: most job rows shown inline; beyond, the report links to summary.md
MAX_JOB_ROWS = 200


def sweep_report(summary: Any, record: Mapping[str, Any] | None = None) -> str:
    """The Markdown of a sweep folder's report, from its `riemexp.sweep.summary.Summary`.

    record: the folder's sweep.yaml (grid name, description, start time) when there is one.
    """
    record = dict(record or {})
    folder = Path(summary.sweep_dir)
    counts: dict[str, int] = {}
    for job in summary.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    grid = record.get("grid")
    title = f"# Sweep {folder.name}: {len(summary.jobs)} runs" + (
        f" of grid '{grid}'" if grid and grid != "none" else ""
    )
    lines = [title, ""]
    if record.get("description"):
        lines += [str(record["description"]).strip(), ""]
    started = f", started {record['started']}" if record.get("started") else ""
    lines += [f"Jobs: {status}{started}.", ""]

    # configuration: what varies, and what every job shares
    swept = [
        {
            "setting": k,
            "values": ", ".join(sorted({_cell(j.config.get(k)) for j in summary.jobs if k in j.config})),
        }
        for k in summary.keys
    ]
    configs = [j.config for j in summary.jobs if j.config]
    shared = {k: v for k, v in configs[0].items() if all(c.get(k) == v for c in configs)} if configs else {}
    fixed = config_rows(shared)
    if swept or fixed:
        lines += ["## Configuration", ""]
    if swept:
        lines += ["Swept:", "", markdown_table(swept, ["setting", "values"]).rstrip(), ""]
    if fixed:
        lines += ["Shared by every job:", "", markdown_table(fixed, ["setting", "value"]).rstrip(), ""]

    # results
    group_keys = list(summary.group_keys)
    done = [r for r in summary.grouped if r.get("test_accuracy_mean") is not None]
    if done:
        best = max(done, key=lambda r: r["test_accuracy_mean"])
        where = ", ".join(f"{k}={_cell(best.get(k))}" for k in group_keys) or "the only configuration"
        lines += [
            "## Results",
            "",
            f"Best mean test accuracy: **{_mean_std(best, 'test_accuracy')}** at {where} "
            f"({best['completed']} of {best['runs']} seeds completed).",
            "",
        ]
        shown = [
            {
                **{k: _cell(r.get(k)) for k in group_keys},
                "runs": f"{r['completed']}/{r['runs']}",
                **{title: _mean_std(r, m) for m, title in SWEEP_COLUMNS},
            }
            for r in summary.grouped
        ]
        columns = [*group_keys, "runs", *(title for _, title in SWEEP_COLUMNS)]
        lines += [
            "Mean ± sample standard deviation over the completed seeds "
            "([summary_grouped.csv](summary_grouped.csv), [.md](summary_grouped.md), "
            "[.tex](summary_grouped.tex)):",
            "",
            markdown_table(shown, columns).rstrip(),
            "",
        ]
    figures = _figures(folder)
    if figures:
        lines += ["## Figures", "", *figures]
    lines += ["## Jobs", ""]
    columns = ["job", *summary.keys, "status", "test_accuracy", "train_accuracy", "input_log_volume_median"]
    rows = [
        {
            **r,
            "job": f"[{r['job']}]({r['job']}/{REPORT_FILE})"
            if (folder / r["job"] / REPORT_FILE).is_file()
            else r["job"],
        }
        for r in summary.rows
    ]
    if len(rows) <= MAX_JOB_ROWS:
        lines += [
            "One row per run (each job's own report is linked; every column in [summary.csv](summary.csv)):",
            "",
            markdown_table(rows, columns).rstrip(),
            "",
        ]
    else:
        lines += [f"{len(rows)} runs: see [summary.md](summary.md) and [summary.csv](summary.csv).", ""]
    failed = [r for r in summary.rows if r.get("error")]
    if failed:
        lines += (
            ["Failures:", ""]
            + [f"- job {r['job']} ({r['status']}): {r['error']}" for r in failed[:50]]
            + [""]
        )
    return "\n".join(lines).rstrip() + "\n"


def write_sweep_report(summary: Any, record: Mapping[str, Any] | None = None) -> Path:
    """Write SWEEP_DIR/report.md (atomically); return its path."""
    path = Path(summary.sweep_dir) / REPORT_FILE
    atomic_write_text(path, sweep_report(summary, record))
    return path


__all__ = ["run_report", "sweep_report", "write_run_report", "write_sweep_report"]
