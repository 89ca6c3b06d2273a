"""The depth limit on two paths: networks trained from scratch at each depth, and refined ones.

`riemexp sweep grid=ode_limit` trains residual networks at one total time T = L h for L = 4 .. 128
twice: from scratch at every depth, and along the refinement path (`refine.from_depth`,
riemexp.refine: depth 2L starts from the trained depth L split into layers of step h/2, the same
ODE, then trains refine.epochs). The refined path starts from the from-scratch network of its
first depth (same seed: the same network). `applies(summary)` recognises such a sweep; then
`write_depth_limit(summary)` writes into the sweep folder:

    depth_limit.csv|md        one row per depth, both paths side by side (columns below); the .md
                              ends with the fitted orders
    depth_limit_orders.csv    path, quantity, order (least-squares slope of log change vs log h),
                              the depths fitted
    plots/depth_limit_weights.png
                              every entry of W(t) and b(t) against t = l h, one line per depth,
                              from scratch (top) and refined (bottom), first completed seed
    plots/depth_limit_field.png
                              the learned vector field sigma(W(t) x + b(t)) as a stream plot at
                              four times t, with the data's trajectories x(s), s <= t, over it; the
                              deepest network of each path (width 2 only)

Per path and depth (mean over seeds, against the previous depth L' = L/2 of the same path and seed):

    g0_change      median over grid points of |g_0(L) - g_0(L')|_F / |g_0(L')|_F
    output_change  mean over grid points of the total-variation distance 1/2 |p(L) - p(L')|_1
                   between the class probabilities
    weight_roughness  sum_l |W_{l+1} - W_l|_F,   bias_roughness  sum_l |b_{l+1} - b_l|
                   (roughness of the weights along depth: bounded when W(t) has bounded
                   variation, growing like L for independent layers)

g_0 is the 2 x 2 data-plane block of the metric in layer-0 coordinates (geometry.npz's
`grid_metric[0]`), on the sweep's common geometry grid. A quantity that converges like h^p
changes by C h^p (1 - 2^-p) between consecutive depths: the slope of log change against log h is p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riemexp.errors import RunFolderError
from riemexp.io import atomic_write_text
from riemexp.sweep.summary import Job, Summary, mean, sample_std
from riemexp.tables import markdown_table, write_table

STEM = "depth_limit"
PATHS = ("scratch", "refined")
QUANTITIES = ("g0_change", "output_change", "weight_roughness", "bias_roughness")
COLUMNS = [
    "depth",
    "step_size",
    *(
        f"{path}_{name}"
        for path in PATHS
        for name in ("completed", "test_accuracy", "g0_change", "g0_change_std", "output_change")
        + QUANTITIES[2:]
    ),
]
ORDER_COLUMNS = ["path", "quantity", "order", "depths", "order_finer_half", "depths_finer_half"]


def _depth(job: Job) -> int | None:
    value = job.config.get("network.depth")
    return int(value) if isinstance(value, (int, float)) else None


def _from_depth(job: Job) -> int | None:
    value = job.config.get("refine.from_depth")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def path_of(job: Job) -> str:
    """'refined' for a job on the refinement path, else 'scratch'."""
    return "scratch" if _from_depth(job) is None else "refined"


def applies(summary: Summary) -> bool:
    """True for a sweep of residual networks at one total time T = L h with refined jobs in it."""
    from riemexp.sweep import ode_limit

    return ode_limit.one_total_time(summary) and any(
        path_of(j) == "refined" for j in summary.jobs if j.config
    )


def _finite(values: Sequence[Any]) -> list[float]:
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [v for v in nums if math.isfinite(v)]


class _Runs:
    """What the table needs from each completed job, read once: grid metric, probabilities, weights."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Any] | None] = {}

    def get(self, job: Job) -> dict[str, Any] | None:
        key = str(job.path)
        if key not in self._cache:
            self._cache[key] = self._read(job)
        return self._cache[key]

    @staticmethod
    def _read(job: Job) -> dict[str, Any] | None:
        from riemexp.analyses.geometry import load_geometry
        from riemexp.runner import read_model_file

        try:
            arrays = load_geometry(job.path)
            state = read_model_file(job.path)["state_dict"]
        except RunFolderError:
            return None
        weight = state["weight"].double().numpy()  # (L, w, w)
        bias = state["bias"].double().numpy()  # (L, w)
        return {
            "points": arrays["grid_points"],
            "g0": arrays["grid_metric"][0][:, :2, :2],
            "proba": arrays["grid_proba"],
            "weight": weight,
            "bias": bias,
            "weight_roughness": float(np.linalg.norm(np.diff(weight, axis=0), axis=(1, 2)).sum()),
            "bias_roughness": float(np.linalg.norm(np.diff(bias, axis=0), axis=1).sum()),
        }


def _changes(new: dict[str, Any], old: dict[str, Any]) -> tuple[float, float] | None:
    """(g0 change, output change) between two runs on the same grid; None when the grids differ."""
    if new["points"].shape != old["points"].shape or not np.allclose(new["points"], old["points"]):
        return None
    rel = np.linalg.norm(new["g0"] - old["g0"], axis=(1, 2)) / np.linalg.norm(old["g0"], axis=(1, 2))
    tv = 0.5 * np.abs(new["proba"] - old["proba"]).sum(axis=1)
    rel = rel[np.isfinite(rel)]
    return (float(np.median(rel)) if len(rel) else math.nan), float(np.mean(tv))


def path_jobs(summary: Summary) -> dict[str, dict[Any, dict[int, Job]]]:
    """{path: {seed: {depth: completed job}}}; refined starts at the scratch job of its first depth."""
    out: dict[str, dict[Any, dict[int, Job]]] = {p: {} for p in PATHS}
    starts: set[int] = set()
    for job in summary.jobs:
        depth, start = _depth(job), _from_depth(job)
        if job.status != "completed" or depth is None:
            continue
        out[path_of(job)].setdefault(job.config.get("seed"), {})[depth] = job
        if start is not None:
            starts.add(start)
    for seed, by_depth in out["scratch"].items():
        for depth in starts:
            if depth in by_depth:
                out["refined"].setdefault(seed, {}).setdefault(depth, by_depth[depth])
    return out


def depth_rows(summary: Summary) -> list[dict[str, Any]]:
    """The rows of depth_limit.csv, sorted by depth (columns `COLUMNS`)."""
    runs = _Runs()
    jobs = path_jobs(summary)
    depths = sorted({d for by_seed in jobs.values() for by_depth in by_seed.values() for d in by_depth})
    steps = {_depth(j): j.config.get("network.step_size") for j in summary.jobs if _depth(j) is not None}
    rows = []
    for depth in depths:
        row: dict[str, Any] = {"depth": depth, "step_size": steps.get(depth)}
        for path in PATHS:
            here = [by_depth[depth] for by_depth in jobs[path].values() if depth in by_depth]
            row[f"{path}_completed"] = len(here)
            row[f"{path}_test_accuracy"] = mean(_finite([j.metrics.get("test_accuracy") for j in here]))
            read = [r for r in (runs.get(j) for j in here) if r is not None]
            row[f"{path}_weight_roughness"] = mean([r["weight_roughness"] for r in read])
            row[f"{path}_bias_roughness"] = mean([r["bias_roughness"] for r in read])
            changes = []
            for by_depth in jobs[path].values():
                prev = [d for d in by_depth if d < depth]
                if depth not in by_depth or not prev:
                    continue
                new, old = runs.get(by_depth[depth]), runs.get(by_depth[max(prev)])
                change = _changes(new, old) if new is not None and old is not None else None
                if change is not None:
                    changes.append(change)
            row[f"{path}_g0_change"] = mean(_finite([c[0] for c in changes]))
            row[f"{path}_g0_change_std"] = sample_std(_finite([c[0] for c in changes]))
            row[f"{path}_output_change"] = mean(_finite([c[1] for c in changes]))
        rows.append(row)
    return rows


def fit_order(steps: Sequence[float], changes: Sequence[float]) -> float | None:
    """Least-squares slope of log(change) against log(step) over the finite positive pairs; None
    with fewer than two."""
    pairs = [(s, c) for s, c in zip(steps, changes) if s and c and c > 0 and math.isfinite(c)]
    if len(pairs) < 2:
        return None
    x = np.log([p[0] for p in pairs])
    y = np.log([p[1] for p in pairs])
    return float(np.polyfit(x, y, 1)[0])


def order_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fitted order of the g_0 and output changes on each path (rows of depth_limit_orders.csv):
    over every depth with a change, and over the finer half of them (at least two; coarse steps
    are often outside the asymptotic regime)."""
    out = []
    for path in PATHS:
        for quantity in ("g0_change", "output_change"):
            used = [r for r in rows if r.get(f"{path}_{quantity}") is not None and r.get("step_size")]
            fine = used[min(len(used) // 2, max(len(used) - 2, 0)) :]
            row: dict[str, Any] = {"path": path, "quantity": quantity}
            for suffix, part in (("", used), ("_finer_half", fine)):
                steps = [float(r["step_size"]) for r in part]
                row[f"order{suffix}"] = fit_order(steps, [r[f"{path}_{quantity}"] for r in part])
                row[f"depths{suffix}"] = f"{part[0]['depth']}-{part[-1]['depth']}" if part else ""
            out.append(row)
    return out


def write_depth_limit(summary: Summary, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write depth_limit.csv|md, depth_limit_orders.csv and the two figures; return the paths."""
    from riemexp.plotting.style import save_figure

    rows = depth_rows(summary)
    orders = order_rows(rows)
    stem = summary.sweep_dir / STEM
    files = write_table(stem, rows, COLUMNS, formats=("csv",))
    files += write_table(summary.sweep_dir / f"{STEM}_orders", orders, ORDER_COLUMNS, formats=("csv",))
    text = (
        markdown_table(rows, COLUMNS)
        + "\nFitted order p of the change between consecutive depths (change ~ h^p):\n\n"
        + markdown_table(orders, ORDER_COLUMNS, digits=3)
    )
    atomic_write_text(stem.with_suffix(".md"), text)
    files.append(stem.with_suffix(".md"))
    figures = _figures(summary)
    for name, fig in figures.items():
        files += save_figure(fig, summary.sweep_dir / "plots" / f"{STEM}_{name}", formats)
    return files


def _figures(summary: Summary) -> dict[str, Any]:
    """{name: figure}: the weights along t and, for width 2, the vector fields (first completed seed)."""
    from riemexp.plotting.depth_limit import vector_field_figure, weights_figure
    from riemexp.runner import load_run

    jobs = path_jobs(summary)
    seeds = [s for s in jobs["scratch"] if s in jobs["refined"]]
    if not seeds:
        return {}
    seed = sorted(seeds, key=str)[0]
    runs = _Runs()
    weights: dict[str, dict[int, dict[str, Any]]] = {path: {} for path in PATHS}
    for path in PATHS:
        for depth, job in sorted(jobs[path][seed].items()):
            read = runs.get(job)
            if read is not None:
                weights[path][depth] = read
    total = None
    for job in jobs["scratch"][seed].values():
        total = float(job.config["network.depth"]) * float(job.config["network.step_size"])
        break
    out: dict[str, Any] = {
        "weights": weights_figure(
            {p: {d: (r["weight"], r["bias"]) for d, r in w.items()} for p, w in weights.items()}, total
        )
    }
    fields = {}
    for path in PATHS:
        deepest = jobs[path][seed][max(jobs[path][seed])]
        try:
            fields[path] = load_run(deepest.path)
        except RunFolderError:
            continue
    if fields and all(run.model.width == 2 for run in fields.values()):
        out["field"] = vector_field_figure({path: field_arrays(run) for path, run in fields.items()})
    return out


def _field_times(depth: int, count: int = 4) -> list[int]:
    """Layer indices l of `count` times t = l h spread over [0, T): 0, L/4, L/2, 3L/4."""
    return sorted({int(depth * k / count) for k in range(count)})


def field_arrays(run: Any, n_points: int = 40, density: int = 25) -> dict[str, Any]:
    """The arrays of `vector_field_figure` for a loaded width-2 run: n_points data points per class
    (seeded choice), their layer coordinates, and the field sigma(W_l x + b_l) at four layers on a
    density x density lattice of a square box around every trajectory."""
    import torch

    from riemexp.geometry import layer_coordinates

    model, data = run.model, run.data
    gen = torch.Generator().manual_seed(0)
    pick = []
    for label in range(data.n_classes):
        idx = torch.nonzero(data.y == label).flatten()
        pick.append(idx[torch.randperm(len(idx), generator=gen)[:n_points]])
    chosen = torch.cat(pick)
    with torch.no_grad():
        coords = layer_coordinates(model, data.x[chosen]).numpy()  # (L+1, P, 2)
        lo, hi = coords.reshape(-1, 2).min(0), coords.reshape(-1, 2).max(0)
        centre, half = (lo + hi) / 2, 0.55 * float((hi - lo).max())
        xs = np.linspace(centre[0] - half, centre[0] + half, density)
        ys = np.linspace(centre[1] - half, centre[1] + half, density)
        gx, gy = np.meshgrid(xs, ys)
        grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1))
        weight, bias = model.float64_weights()
        layers = _field_times(model.depth)
        fields = [
            model.sigma(grid @ weight[layer].T + bias[layer]).numpy().reshape(density, density, 2)
            for layer in layers
        ]
    return {
        "xs": xs,
        "ys": ys,
        "times": [(layer, layer * model.h) for layer in layers],
        "fields": fields,
        "coords": coords,
        "labels": data.y[chosen].numpy(),
        "class_names": list(data.class_names),
        "depth": model.depth,
    }


__all__ = ["COLUMNS", "applies", "depth_rows", "fit_order", "order_rows", "path_jobs", "write_depth_limit"]
