"""Experiment loggers, read back with the tools' own readers: TensorBoard's EventAccumulator and
an MLflow client against the embedded SQLite store and against an `mlflow server` on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from riemexp.config import OdeConfig, PlotConfig
from riemexp.loggers import RunLoggers, check_installed
from riemexp.loggers.mlflow import IDENTITY_TAG, MlflowLogger, MlflowOptions
from riemexp.runner import run
from tests.conftest import TINY_OVERRIDES, run_cli, tiny_config

pytest.importorskip("tensorboard", reason="the test extra installs tensorboard")
pytest.importorskip("mlflow", reason="the test extra installs mlflow")

from mlflow.entities import ViewType  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

NO_ANALYSIS = ["geometry.enabled=false", "plot.enabled=false", "ode.enabled=false"]
HISTORY = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def history(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def only_run(client: MlflowClient, experiment: str):  # noqa: ANN201
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        out += artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(out)


# --------------------------------------------------------------------------- TensorBoard


def test_tensorboard_events_read_back(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny_config(ode=OdeConfig(enabled=False), plot=PlotConfig(n_layers=2, glyph_density=4))
    metrics = run(cfg, run_dir, loggers=RunLoggers.from_config({"tensorboard": {}}))
    acc = events(run_dir / "tensorboard")
    tags = acc.Tags()
    rows = history(run_dir)
    for tag in HISTORY:  # one scalar per epoch, the values of history.csv (float32 in the event file)
        got = acc.Scalars(tag)
        assert [e.step for e in got] == [int(r["epoch"]) for r in rows]
        assert [e.value for e in got] == pytest.approx([r[tag] for r in rows], rel=1e-6)
    final = acc.Scalars("final/test_accuracy")
    assert [(e.step, e.value) for e in final] == [(5, pytest.approx(metrics["test_accuracy"], rel=1e-6))]
    assert "final/input_log_volume_median" in tags["scalars"] and "final/seed" not in tags["scalars"]
    png = (run_dir / "plots" / "layers.png").read_bytes()
    assert acc.Images("figures/layers")[0].encoded_image_string == png  # the figure as drawn
    assert {"figures/input_space", "figures/training_curves"} <= set(tags["images"])
    # the config as hyperparameters, the final numbers as their metrics (TensorBoard's HParams tab)
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["network.depth"].number_value == 3
    assert hparams["dataset.name"].string_value == "moons"
    assert hparams["status"].string_value == "completed"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert "final/test_accuracy" in {m.name.tag for m in experiment.metric_infos}
    assert {"config/text_summary", "report/text_summary", "tables/layers/text_summary"} <= set(
        tags["tensors"]
    )


def test_tensorboard_logger_failing_mid_run_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    calls = {"n": 0}
    add_scalar = SummaryWriter.add_scalar

    def failing(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] > 6:  # the disk fills up in epoch 2
            raise OSError(28, "No space left on device")
        return add_scalar(self, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", failing)
    run_dir = tmp_path / "run"
    cfg = tiny_config(ode=OdeConfig(enabled=False), plot=PlotConfig(enabled=False))
    with caplog.at_level(logging.WARNING, logger="riemexp"):
        metrics = run(cfg, run_dir, loggers=RunLoggers.from_config({"tensorboard": {}}))
    assert metrics["status"] == "completed"
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    warnings = [r.getMessage() for r in caplog.records if "logger tensorboard failed" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "No space left on device" in warnings[0] and "the run goes on without it" in warnings[0]
    assert calls["n"] == 7  # dropped at the first failure: no more calls


def test_tensorboard_re_run_into_a_completed_folder(tmp_path: Path) -> None:
    """A re-run is built in a staging folder and swapped in: its events move with it, whole."""
    run_dir = tmp_path / "run"
    cfg = tiny_config(ode=OdeConfig(enabled=False), plot=PlotConfig(enabled=False))
    run(cfg, run_dir, loggers=RunLoggers.from_config({"tensorboard": {}}))
    run(cfg, run_dir, loggers=RunLoggers.from_config({"tensorboard": {}}))
    acc = events(run_dir / "tensorboard")
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 2, 3, 4, 5]  # the earlier run's are gone
    assert len(acc.Scalars("final/test_accuracy")) == 1


# --------------------------------------------------------------------------- MLflow, embedded store


def test_mlflow_embedded_store_from_the_cli(tmp_path: Path) -> None:
    """The default store: outputs/mlflow.db under the folder riemexp runs in, artifacts beside it."""
    out = run_cli("train", *TINY_OVERRIDES, "logger=mlflow", "hydra.run.dir=outputs/run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "logger" not in (tmp_path / "outputs/run/config.yaml").read_text()  # not part of the experiment
    metrics = json.loads((tmp_path / "outputs/run/metrics.json").read_text())
    client = MlflowClient(tracking_uri=sqlite_uri(tmp_path / "outputs/mlflow.db"))
    got = only_run(client, "riemexp")
    assert got.info.status == "FINISHED" and got.info.run_name == "moons-residual-L3-w2-seed0"
    assert got.data.params["network.depth"] == "3" and got.data.params["dataset.name"] == "moons"
    assert got.data.tags[IDENTITY_TAG] == metrics["run_identity"]
    assert got.data.tags["riemexp.run_dir"] == str((tmp_path / "outputs/run").resolve())
    assert got.data.metrics["final/test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    rows = history(tmp_path / "outputs/run")
    steps = client.get_metric_history(got.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in steps) == [
        (int(r["epoch"]), pytest.approx(r["train_loss"])) for r in rows
    ]
    files = artifact_files(client, got.info.run_id)
    assert {"config.yaml", "metrics.json", "history.csv", "report.md", "plots/layers.png"} <= set(files)
    assert {"tables/layers.csv", "tables/layers.md", "tables/ode.csv"} <= set(files)
    assert (tmp_path / "outputs/mlflow-artifacts").is_dir() and not (tmp_path / "mlruns").exists()


def test_mlflow_re_run_replaces_the_folder_s_run(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "store.db")
    options = {"mlflow": {"tracking_uri": uri, "experiment": "re-runs"}}
    cfg = tiny_config(ode=OdeConfig(enabled=False), plot=PlotConfig(enabled=False))
    run(cfg, tmp_path / "a", loggers=RunLoggers.from_config(options))
    run(cfg, tmp_path / "a", loggers=RunLoggers.from_config(options))  # the same folder again
    run(cfg, tmp_path / "b", loggers=RunLoggers.from_config(options))  # another folder: another run
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("re-runs").experiment_id
    active = client.search_runs([experiment])
    assert sorted(Path(r.data.tags["riemexp.run_dir"]).name for r in active) == ["a", "b"]
    assert len(client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)) == 1
    for r in active:
        assert len(client.get_metric_history(r.info.run_id, "test_loss")) == 5  # no doubled epochs


@pytest.mark.slow
def test_sweep_one_experiment_resumed_jobs_not_duplicated(tmp_path: Path) -> None:
    """A sweep run without loggers, resumed with both: its finished jobs are logged from their
    folders once; resumed again: nothing twice. TensorBoard sees one run per job."""
    sweep = tmp_path / "sweep"
    base = [
        "grid=none",
        *TINY_OVERRIDES,
        *NO_ANALYSIS,
        "network.depth=2,3",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    ]
    assert run_cli("sweep", *base, cwd=tmp_path).returncode == 0
    loggers = "logger=[tensorboard,mlflow]"
    for _ in range(2):
        out = run_cli("sweep", *base, loggers, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "4 skipped" in out.stdout and "failed" not in out.stderr
    client = MlflowClient(tracking_uri=sqlite_uri(tmp_path / "outputs/mlflow.db"))
    experiment = client.get_experiment_by_name("riemexp sweep sweep")
    assert experiment is not None and experiment.tags["riemexp.sweep_dir"] == str(sweep.resolve())
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert sorted((r.data.params["network.depth"], r.data.params["seed"]) for r in runs) == [
        ("2", "0"),
        ("2", "1"),
        ("3", "0"),
        ("3", "1"),
    ]
    assert {r.data.tags["riemexp.job"] for r in runs} == {
        p.name for p in sweep.iterdir() if (p / "metrics.json").is_file()
    }
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(sweep))
    mux.Reload()
    assert len(mux.Runs()) == 4
    for name in mux.Runs():
        assert len(mux.Scalars(name, "test_accuracy")) == 5
        assert len(mux.Scalars(name, "final/test_accuracy")) == 1


# --------------------------------------------------------------------------- MLflow, a server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`mlflow server` on 127.0.0.1: started, waited for (its 'startup complete' line), stopped."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", sqlite_uri(folder / "server.db"),
            "--artifacts-destination", str(folder / "server-artifacts"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ.copy(),
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "Application startup complete" in line or "Listening at" in line:
                self.ready.set()
        self.ready.set()  # the server ended: wake the waiter, which checks

    def wait(self, timeout: float = 300) -> None:
        """Until the server says it serves (an event); `timeout` only bounds a hung start."""
        assert self.ready.wait(timeout), "mlflow server did not start:\n" + "".join(self.lines[-20:])
        assert self.proc.poll() is None, "mlflow server exited:\n" + "".join(self.lines[-20:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(tmp_path: Path):  # noqa: ANN201
    srv = Server(tmp_path)
    try:
        srv.wait()
        yield srv
    finally:
        srv.stop()


@pytest.mark.slow
def test_mlflow_server_and_a_server_that_goes_away(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config(ode=OdeConfig(enabled=False), plot=PlotConfig(n_layers=2, glyph_density=4))
    options = {"mlflow": {"tracking_uri": server.uri}}
    metrics = run(cfg, tmp_path / "run", loggers=RunLoggers.from_config(options))
    client = MlflowClient(tracking_uri=server.uri)
    got = only_run(client, "riemexp")
    assert got.info.status == "FINISHED" and got.data.tags[IDENTITY_TAG] == metrics["run_identity"]
    assert got.data.metrics["final/test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert len(client.get_metric_history(got.info.run_id, "test_accuracy")) == 5
    assert {"plots/layers.png", "report.md", "tables/layers.csv"} <= set(
        artifact_files(client, got.info.run_id)
    )

    # the server goes away in the middle of a run: one warning, the run itself is untouched
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    loggers = RunLoggers([MlflowLogger(MlflowOptions(tracking_uri=server.uri))])
    loggers.start(loggers.run_info(tmp_path / "run", {"seed": 0}, "0123456789abcdef"))
    loggers.epoch({"epoch": 1, "train_loss": 1.0})
    server.stop()
    with caplog.at_level(logging.WARNING, logger="riemexp"):
        for epoch in range(2, 5):
            loggers.epoch({"epoch": epoch, "train_loss": 1.0 / epoch})
        loggers.finish({"status": "completed", "epochs": 4, "test_accuracy": 0.5})
    warnings = [r.getMessage() for r in caplog.records if "logger mlflow failed" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert not loggers.loggers


def test_unreachable_tracking_server_does_not_fail_the_run(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    out = run_cli(
        "train", *TINY_OVERRIDES, *NO_ANALYSIS, "logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "run/metrics.json").read_text())["status"] == "completed"
    said = out.stdout + out.stderr  # Hydra's log lines go to standard output
    assert said.count("logger mlflow failed while starting the run") == 1, said


# --------------------------------------------------------------------------- choosing loggers


@pytest.mark.parametrize(
    ("logger", "extra"), [("mlflow", "riemexp[mlflow]"), ("tensorboard", "riemexp[tensorboard]")]
)
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_logger_that_is_not_installed_is_named_before_any_work(
    tmp_path: Path, logger: str, extra: str, command: str
) -> None:
    folder = tmp_path / "out"
    where = f"hydra.run.dir={folder}" if command == "train" else f"hydra.sweep.dir={folder}"
    args = [command, *TINY_OVERRIDES, f"logger=[{logger}]", where]
    code = (
        f"import sys; sys.modules[{logger!r}] = None; from riemexp.cli import main; sys.exit(main({args!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr  # (a sweep adds the job it checked: "(in the sweep job ...)")
    assert lines[0].startswith(
        f"riemexp: error: logger={logger} needs the '{logger}' package, which is not installed; "
        f"install it with: pip install '{extra}'"
    )
    assert not folder.exists()


def test_logger_config_errors() -> None:
    out = run_cli("train", "logger=wandb")
    assert out.returncode == 2
    assert "unknown logger 'wandb'; expected one of: mlflow, none, tensorboard" in out.stderr
    out = run_cli("train", "logger.mlflow.tracking_uri=http://x")  # mlflow not chosen
    assert out.returncode == 2 and "logger.mlflow.tracking_uri" in out.stderr
    with pytest.raises(Exception, match="unknown option logger.mlflow.uri"):
        check_installed({"mlflow": {"uri": "x"}})


def test_the_logger_is_not_part_of_the_experiment() -> None:
    from riemexp.commands.hydra_app import compose_config, logger_values, to_run_config
    from riemexp.identity import run_identity

    plain = compose_config("train", [])
    both = compose_config("train", ["logger=[tensorboard,mlflow]", "logger.mlflow.experiment=x"])
    assert run_identity(to_run_config(plain)) == run_identity(to_run_config(both))
    assert logger_values(plain) == {}
    assert set(logger_values(both)) == {"tensorboard", "mlflow"}
    assert logger_values(both)["mlflow"]["experiment"] == "x"


def test_the_default_store_and_experiment_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from riemexp.loggers.mlflow import experiment_name, tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(MlflowOptions()) == f"sqlite:///{tmp_path.resolve()}/outputs/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert tracking_uri(MlflowOptions()) == "http://team:5000"
    assert tracking_uri(MlflowOptions(tracking_uri="http://other:5000")) == "http://other:5000"
    assert experiment_name(MlflowOptions(), None) == "riemexp"
    assert experiment_name(MlflowOptions(), tmp_path / "multirun/d/t") == "riemexp sweep multirun/d/t"
    assert experiment_name(MlflowOptions(experiment="mine"), tmp_path / "x") == "mine"


def test_loggers_get_rows_they_missed_at_finish(tmp_path: Path) -> None:
    """A run written without streaming (an ensemble member's folder) hands its history at the end."""
    seen: list[float] = []

    class Recorder(MlflowLogger):
        name = "recorder"

        def start(self, run) -> None:  # noqa: ANN001
            pass

        def log_epoch(self, row) -> None:  # noqa: ANN001
            seen.append(row["epoch"])

        def finish(self, run, metrics) -> None:  # noqa: ANN001
            seen.append(-1)

    loggers = RunLoggers([Recorder()])
    loggers.start(loggers.run_info(tmp_path, {}, "x"))
    loggers.epoch({"epoch": 1.0})
    loggers.finish({"status": "completed"}, [{"epoch": 1.0}, {"epoch": 2.0}, {"epoch": 3.0}])
    assert seen == [1.0, 2.0, 3.0, -1]


def test_checking_loggers_imports_neither_library() -> None:
    """The check before a run finds the packages without importing them (they are slow to import)."""
    code = (
        "import sys; from riemexp.commands.hydra_app import compose_config, logger_values;"
        "logger_values(compose_config('train', ['logger=[tensorboard,mlflow]']));"
        "assert 'mlflow' not in sys.modules and 'tensorboard' not in sys.modules, 'imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
