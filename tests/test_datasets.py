"""Datasets: the toy generators, CSV files (parsing, every bad file, standardisation), the CLI."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from riemexp import cli
from riemexp.config import AdamConfig, DatasetConfig, load_config
from riemexp.data.csv import CsvConfig, read_csv
from riemexp.data.dataset import make_dataset
from riemexp.data.registry import DATASETS
from riemexp.data.toy import GaussiansConfig, XorConfig
from riemexp.errors import ConfigError, DataError, RunFolderError
from riemexp.train import train
from tests.conftest import run_cli, tiny_config

GENERATED = ["spirals", "circles", "moons", "xor", "gaussians"]
NO_ANALYSES = ["geometry.enabled=false", "plot.enabled=false", "ode.enabled=false"]


def write_csv(
    path: Path,
    n_per_class: int = 15,
    classes=("setosa", "versicolor", "virginica"),
    seed: int = 0,
    header: str | None = "length,width,species",
    offset=(50.0, -20.0),
    scale=(10.0, 0.5),
) -> Path:
    """Blobs in user units far from the origin: class k centred at offset + scale * (cos, sin)(2 pi k / C)."""
    rng = random.Random(seed)
    rows = [] if header is None else [header]
    for k, name in enumerate(classes):
        angle = 2 * math.pi * k / len(classes)
        for _ in range(n_per_class):
            a = offset[0] + scale[0] * (math.cos(angle) + 0.2 * rng.gauss(0, 1))
            b = offset[1] + scale[1] * (math.sin(angle) + 0.2 * rng.gauss(0, 1))
            rows.append(f"{a:.4f},{b:.4f},{name}")
    path.write_text("\n".join(rows) + "\n")
    return path


def csv_config(path: Path, **options) -> DatasetConfig:
    return CsvConfig(path=str(path), **options)


# --------------------------------------------------------------------------- toy generators


@pytest.mark.parametrize("name", GENERATED)
def test_generators_are_deterministic_and_seeded(name):
    cfg = DatasetConfig.of(name, n_samples=101)
    a, b, c = make_dataset(cfg, 3), make_dataset(cfg, 3), make_dataset(cfg, 4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.is_test, b.is_test)
    assert not torch.equal(a.x, c.x)
    assert a.x.dtype == torch.float64 and a.x.shape == (101, 2) and a.y.dtype == torch.int64
    assert len(a.x_test) == round(101 * cfg.test_fraction)
    assert sorted(a.y.unique().tolist()) == list(range(a.n_classes))
    # toy sets are not standardised: identity statistics, so the network sees the points unchanged
    assert torch.equal(a.input_shift, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(a.input_scale, torch.ones(2, dtype=torch.float64))


def test_xor_labels_are_quadrants():
    data = make_dataset(XorConfig(n_samples=400, noise=0.0), 0)
    x, y = data.x, data.y
    assert torch.equal(y, (x[:, 0] * x[:, 1] < 0).long())
    assert int((y == 0).sum()) == int((y == 1).sum()) == 200
    assert x.abs().max() <= 1
    for quadrant in ((1, 1), (-1, 1), (-1, -1), (1, -1)):  # all four quadrants are populated
        signs = torch.tensor(quadrant, dtype=torch.float64)
        assert int(((x * signs) > 0).all(1).sum()) > 50
    assert data.class_names == ("quadrants I, III", "quadrants II, IV")


def test_gaussians_classes_centres_and_spread():
    cfg = GaussiansConfig(n_samples=4003, n_classes=4, spread=0.1, noise=0.0)
    data = make_dataset(cfg, 0)
    assert data.class_names == ("blob 0", "blob 1", "blob 2", "blob 3")
    counts = torch.bincount(data.y).tolist()
    assert counts == [1001, 1001, 1001, 1000]
    for k in range(4):
        points = data.x[data.y == k]
        centre = torch.tensor([math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)], dtype=torch.float64)
        assert torch.allclose(points.mean(0), centre, atol=0.02)
        assert torch.allclose(points.std(0), torch.full((2,), 0.1, dtype=torch.float64), rtol=0.1)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(name="gaussians", n_classes=1), "dataset.n_classes must be >= 2, got 1"),
        (dict(name="gaussians", spread=0.0), "dataset.spread must be > 0, got 0.0"),
        (dict(name="gaussians", spread=-1.0), "dataset.spread must be > 0"),
        (dict(name="gaussians", n_classes=8, n_samples=12), "expected at least 2 points per class"),
        (dict(name="xor", noise=-0.1), "dataset.noise must be >= 0"),
        (dict(name="xor", n_samples=5), "dataset.n_samples must be >= 10"),
        (dict(name="nonesuch"), "dataset must be one of {circles, csv, gaussians, moons, spirals, xor}"),
    ],
)
def test_bad_dataset_options_are_config_errors(options, message):
    with pytest.raises(ConfigError) as info:
        load_config({"dataset": options})
    assert message in str(info.value)


def test_column_options_accept_names_and_indices_only():
    cfg = load_config({"dataset": {"name": "csv", "label_column": "kind", "coordinate_columns": ["a", 3]}})
    assert cfg.dataset.label_column == "kind" and cfg.dataset.coordinate_columns == ("a", 3)
    with pytest.raises(ConfigError, match=r"dataset.label_column must be a str or int, got 1.5"):
        load_config({"dataset": {"name": "csv", "label_column": 1.5}})


# --------------------------------------------------------------------------- CSV: reading


def test_csv_with_header_names_and_relative_path(tmp_path, monkeypatch):
    write_csv(tmp_path / "iris.csv")
    monkeypatch.chdir(tmp_path)
    cfg = CsvConfig(path="iris.csv", coordinate_columns=("length", "width"), label_column="species")
    assert cfg.path == str(tmp_path / "iris.csv")  # kept absolute, for load_run from anywhere
    table = read_csv(cfg)
    assert table.class_names == ("setosa", "versicolor", "virginica")
    assert table.coordinate_names == ("length", "width") and table.label_name == "species"
    assert table.x.shape == (45, 2) and table.lines == (2, 46)
    assert table.x[0].tolist() == [
        float(v) for v in (tmp_path / "iris.csv").read_text().splitlines()[1].split(",")[:2]
    ]
    # the same file by index, header detected
    by_index = read_csv(CsvConfig(path="iris.csv"))
    assert torch.equal(by_index.x, table.x) and torch.equal(by_index.y, table.y)


def test_csv_class_order_is_stable_and_integers_sort_numerically(tmp_path):
    lines = [f"{i},{i % 7},{label}" for i, label in enumerate([10, 2, 7] * 6)]
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "b.csv").write_text("\n".join(reversed(lines)) + "\n")
    a, b = read_csv(csv_config(tmp_path / "a.csv")), read_csv(csv_config(tmp_path / "b.csv"))
    assert a.class_names == b.class_names == ("2", "7", "10")  # no header detected: first line is data
    assert a.y[:3].tolist() == [2, 0, 1]
    assert torch.equal(a.y, b.y.flip(0))
    assert a.coordinate_names == ("0", "1")


def test_csv_layouts_tab_bom_crlf_quotes_label_first(tmp_path):
    rows = ['"kind"\t"u"\t"v"'] + [f'"type {i % 2}, big"\t{i}\t{i * i % 5}' for i in range(12)]
    path = tmp_path / "t.tsv"
    path.write_bytes(("\r\n".join(rows) + "\r\n\r\n").encode("utf-8-sig"))
    cfg = csv_config(path, delimiter="tab", coordinate_columns=("u", "v"), label_column="kind")
    table = read_csv(cfg)
    assert table.class_names == ("type 0, big", "type 1, big")
    assert table.x[:, 0].tolist() == list(range(12))
    assert table.lines == (2, 13)


def test_csv_is_standardised_with_training_statistics(tmp_path):
    cfg = csv_config(write_csv(tmp_path / "iris.csv"))
    data = make_dataset(cfg, 0)
    assert torch.equal(data.x, torch.cat([data.x_train, data.x_test]))  # points stay in user units
    assert data.x.abs().max() > 10
    assert torch.allclose(data.input_shift, data.x_train.mean(0))
    assert torch.allclose(data.input_scale, data.x_train.std(0, correction=0))
    assert not torch.allclose(data.input_shift, data.x.mean(0))  # training split only, not all rows
    # train() gives the network the statistics: it sees standardised training points
    run_cfg = tiny_config(dataset=cfg, optim=AdamConfig(epochs=2))
    model = train(run_cfg, data).model
    assert torch.allclose(model.input_shift, data.input_shift.float())
    assert torch.allclose(model.input_scale, data.input_scale.float())
    x0 = model.pad(data.x_train)
    assert torch.allclose(x0.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x0.std(0, correction=0), torch.ones(2, dtype=torch.float64), atol=1e-6)


def test_input_metric_of_a_csv_model_is_in_user_units(tmp_path):
    """g_input from riemexp.geometry equals J^T J, J = d x_L / d x by autograd in float64, where x is
    in the file's units: the standardisation is part of the map, not of the coordinates."""
    import copy

    from riemexp.geometry import input_metric, pullback_metrics

    cfg = csv_config(write_csv(tmp_path / "iris.csv"))
    data = make_dataset(cfg, 0)
    model = train(tiny_config(dataset=cfg, optim=AdamConfig(epochs=20)), data).model
    x = data.x_test[:6]  # (6, 2), user units
    model64 = copy.deepcopy(model).double()
    jac = torch.vmap(torch.func.jacrev(lambda p: model64.hidden(p[None])[0]))(x)  # (6, w, 2)
    expected = jac.transpose(1, 2) @ jac  # (6, 2, 2)
    assert torch.allclose(input_metric(model, x), expected, rtol=1e-6, atol=1e-12)
    layer0_metric = pullback_metrics(model, x)[0]  # in standardised units: a different tensor
    assert not torch.allclose(input_metric(model, x), layer0_metric, rtol=1e-2)


def test_toy_training_is_unchanged_by_standardisation_buffers():
    cfg = tiny_config()
    data = make_dataset(cfg.dataset, cfg.data_seed)
    model = train(cfg, data).model
    assert torch.equal(model.input_shift, torch.zeros(2)) and torch.equal(model.input_scale, torch.ones(2))
    assert torch.equal(model.pad(data.x), data.x)


# --------------------------------------------------------------------------- CSV: bad files

BAD_CSVS = {
    # name: (file text or None for a missing file, extra overrides, [what the message must say])
    "missing": (None, [], ["no such file", "expected a CSV file"]),
    "two_columns": ("x,y\n1,2\n3,4\n", [], ["line 1: 2 columns", "expected at least 3"]),
    "one_column_other_delimiter": ("x;y;c\n1;2;a\n", [], ["line 1: 1 column", "dataset.delimiter"]),
    "non_numeric": (
        "x,y,c\n1,2,a\n3,abc,b\n",
        [],
        ["line 3, column 'y': 'abc' is not a number", "expected a finite number"],
    ),
    "nan": (
        "x,y,c\n1,2,a\nnan,4,b\n",
        [],
        ["line 3, column 'x': 'nan' is not finite", "expected a finite number"],
    ),
    "infinite": ("1,2,a\n3,-inf,b\n", [], ["line 2, column 1: '-inf' is not finite"]),
    "empty_field": (
        "x,y,c\n1,2,a\n3,,b\n",
        [],
        ["line 3, column 'y': empty coordinate", "expected a finite number"],
    ),
    "empty_row": (
        "x,y,c\n1,2,a\n\n3,4,b\n",
        [],
        ["line 3: empty row", "expected two numeric coordinates and a label"],
    ),
    "blank_fields_row": ("x,y,c\n1,2,a\n,,\n3,4,b\n", [], ["line 3: empty row"]),
    "missing_label": ("x,y,c\n1,2,a\n3,4,NaN\n", [], ["line 3, column 'c': missing label 'NaN'"]),
    "ragged": ("x,y,c\n1,2,a\n3,4\n", [], ["line 3: 2 fields; expected 3, like line 1"]),
    "single_class": (
        "x,y,c\n" + "".join(f"{i},{i * 2},a\n" for i in range(20)),
        [],
        ["lines 2-21", "single class ('a')", "expected at least 2 classes"],
    ),
    "no_label_column": (
        "x,y,c\n1,2,a\n",
        ["dataset.label_column=kind"],
        ["line 1 (header): no column named 'kind'", "expected one of: 'x', 'y', 'c'"],
    ),
    "label_index_out_of_range": (
        "1,2,a\n",
        ["dataset.label_column=5"],
        ["dataset.label_column=5 is not a column", "expected an index in 0..2"],
    ),
    "too_few_rows": ("x,y,c\n1,2,a\n3,4,b\n", [], ["lines 2-3: 2 data rows", "expected at least 10"]),
    "labels_are_coordinates": (
        "".join(f"{i},{i % 3},{i * 0.37:.2f}\n" for i in range(20)),
        [],
        ["20 distinct labels in 20 rows"],
    ),
    "constant_coordinate": (
        "x,y,c\n" + "".join(f"{i},5,{'ab'[i % 2]}\n" for i in range(20)),
        [],
        ["coordinate column 'y' is constant (5)", "expected coordinates that vary"],
    ),
    "header_or_data": (
        "x,2,c\n1,2,a\n",
        [],
        ["line 1: the coordinate fields 'x' and '2' are neither", "dataset.header"],
    ),
    "names_without_header": (
        "1,2,a\n",
        ["dataset.header=false", "dataset.label_column=c"],
        ["names a column, but dataset.header=false"],
    ),
    "same_column_twice": (
        "x,y,c\n1,2,a\n",
        ["dataset.label_column=x"],
        ["use column(s) [0] twice", "expected three different columns"],
    ),
    "empty_file": ("", [], ["the file is empty"]),
    "header_only": ("x,y,c\n", [], ["no data rows after the header"]),
    "not_utf8": (b"x,y,c\n1,2,\xff\n", [], ["is not UTF-8 text"]),
    "split_too_small": (
        "".join(f"{i},{i % 4},{'ab'[i % 2]}\n" for i in range(10)),
        ["dataset.test_fraction=0.01"],
        ["leaves 0 test and 10 training points"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_is_one_clear_message_before_any_run_folder(case, tmp_path, capsys):
    text, overrides, expected = BAD_CSVS[case]
    path = tmp_path / f"{case}.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    run_dir = tmp_path / "run"
    code = cli.main(["train", "dataset=csv", f"dataset.path={path}", *overrides, f"hydra.run.dir={run_dir}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("riemexp: error:") == 1 and str(path) in err
    for part in expected:
        assert part in err
    assert not run_dir.exists()  # refused while the config was checked, before Hydra made a folder


def test_csv_without_path_says_how_to_give_one(capsys):
    assert cli.main(["train", "dataset=csv", "hydra.run.dir=/nonexistent/run"]) == 2
    assert "dataset=csv needs a file: set dataset.path=FILE" in capsys.readouterr().err


def test_bad_csv_column_options_are_config_errors(tmp_path):
    path = write_csv(tmp_path / "iris.csv")
    with pytest.raises(ConfigError, match=r"coordinate_columns must name 2 columns .* got \[0\]"):
        read_csv(csv_config(path, coordinate_columns=(0,)))
    with pytest.raises(ConfigError, match="dataset.delimiter must be a single character"):
        read_csv(csv_config(path, delimiter=";;"))
    with pytest.raises(DataError, match="is not a file"):
        read_csv(csv_config(tmp_path))


@pytest.mark.slow
def test_bad_csv_through_the_cli_has_no_traceback(tmp_path):
    (tmp_path / "bad.csv").write_text("x,y,c\n1,2,a\n3,abc,b\n")
    result = run_cli(
        "train", "dataset=csv", "dataset.path=bad.csv", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert (
        f"riemexp: error: {tmp_path / 'bad.csv'}: line 3, column 'y': 'abc' is not a number" in result.stderr
    )
    assert not (tmp_path / "run" / "metrics.json").exists()


# --------------------------------------------------------------------------- through the CLI


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [["dataset=xor"], ["dataset=gaussians", "dataset.n_classes=4"]])
def test_new_toy_sets_train_through_the_cli(overrides, tmp_path):
    from riemexp.runner import load_run

    result = run_cli(
        "train",
        *overrides,
        "dataset.n_samples=120",
        "network.depth=3",
        "optim.epochs=5",
        *NO_ANALYSES,
        f"hydra.run.dir={tmp_path}/run",
    )
    assert result.returncode == 0, result.stderr
    loaded = load_run(tmp_path / "run")
    assert loaded.metrics["status"] == "completed"
    assert (
        loaded.data.n_classes == loaded.model.head.out_features == (4 if "gaussians" in overrides[0] else 2)
    )


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory):
    """A 3-class CSV in user units (far from the origin) through `riemexp train`, every
    analysis on, from the CSV's own directory with a relative path: (csv file, run folder)."""
    root = tmp_path_factory.mktemp("three_class")
    work = root / "work"
    work.mkdir()
    write_csv(work / "iris.csv", n_per_class=20)
    run_dir = root / "run"
    result = run_cli(
        "train",
        "dataset=csv",
        "dataset.path=iris.csv",
        "dataset.coordinate_columns=[length,width]",
        "dataset.label_column=species",
        "network.depth=3",
        "optim.epochs=60",
        "geometry.grid_density=8",
        "ode.max_refinement=4",
        f"hydra.run.dir={run_dir}",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    return work / "iris.csv", run_dir


@pytest.mark.slow
def test_three_class_csv_end_to_end(three_class_run, tmp_path, monkeypatch):
    """load_run from another directory: same dataset, same standardisation, same predictions."""
    from riemexp.runner import load_run

    csv_file, run_dir = three_class_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["train_accuracy"] > 0.9

    monkeypatch.chdir(tmp_path)  # the saved path is absolute: load_run works from anywhere
    loaded = load_run(run_dir)
    assert loaded.config.dataset.path == str(csv_file)
    assert loaded.data.class_names == ("setosa", "versicolor", "virginica")
    assert loaded.model.head.out_features == 3
    data = make_dataset(loaded.config.dataset, loaded.config.data_seed)
    assert torch.equal(loaded.data.x, data.x) and torch.equal(loaded.data.y, data.y)
    assert torch.allclose(loaded.model.input_shift, data.input_shift.float())
    assert torch.allclose(loaded.model.input_scale, data.input_scale.float())
    # the saved model reproduces its recorded accuracy on the regenerated data
    with torch.no_grad():
        accuracy = (loaded.model(data.x_train.float()).argmax(1) == data.y_train).double().mean().item()
    assert accuracy == pytest.approx(metrics["train_accuracy"])
    # training again in-process from the saved config gives the saved network's predictions
    retrained = train(loaded.config, data).model
    with torch.no_grad():
        assert torch.allclose(retrained(data.x.float()), loaded.model(data.x.float()), atol=1e-5)


@pytest.mark.slow
def test_edited_csv_is_refused_when_a_run_is_read_back(three_class_run, tmp_path):
    from riemexp.runner import load_run

    csv_file, run_dir = three_class_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    original = csv_file.read_bytes()
    try:
        last_row = original.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        csv_file.write_bytes(original.rstrip(b"\n") + b"\n" + last_row + b"\n")  # one more row
        with pytest.raises(RunFolderError, match="has changed since run"):
            load_run(copy)
    finally:
        csv_file.write_bytes(original)
    assert load_run(copy).data.n_classes == 3


@pytest.mark.slow
def test_three_class_csv_plot_metric(three_class_run, tmp_path):
    _, run_dir = three_class_run
    result = run_cli("plot-metric", f"run={run_dir}", f"out={tmp_path / 'figs'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    redrawn = {p.name for p in (tmp_path / "figs").glob("*.png")}
    assert {"layers.png", "input_space.png"} <= redrawn <= {p.name for p in (run_dir / "plots").glob("*.png")}


def test_registry_names_match_the_config_group():
    from riemexp.commands.hydra_app import compose_config, group_options

    assert group_options("dataset") == sorted(DATASETS)
    for name in DATASETS:
        values = OmegaConf.to_container(compose_config("train", [f"dataset={name}"]).dataset)
        assert values["name"] == name
        assert DatasetConfig.of(**values) == DATASETS[name].config()  # the class's own defaults
