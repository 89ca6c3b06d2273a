"""TensorBoard: a run's event file in RUN/tensorboard/ (`logger=tensorboard`).

What is written (tags):

    train_loss, train_accuracy, test_loss, test_accuracy   per epoch (step = epoch): history.csv
    final/KEY                                              every number of metrics.json (step = epochs)
    hparams                                                the resolved config, flattened
                                                           (network.depth, optim.lr, ...), and status;
                                                           the HParams tab compares the runs under a
                                                           logdir, with the final/ numbers as metrics
    figures/NAME                                           the run's PNG figures (plots/NAME.png), as drawn
    config, report, tables/NAME                            config.yaml, report.md and tables/*.md as text

View one run, all runs, or a sweep: `tensorboard --logdir outputs/` (or the sweep folder). The
events are written with `torch.utils.tensorboard`, which needs the `tensorboard` package
(`pip install 'riemexp[tensorboard]'`); that package is also the viewer.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riemexp.layout import CONFIG_FILE, PLOTS_DIR, REPORT_FILE, TABLES_DIR, TENSORBOARD_DIR
from riemexp.loggers.base import Logger, RunInfo, final_numbers, flat_config

HISTORY_TAGS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


@dataclass(frozen=True)
class TensorBoardOptions:
    figures: bool = True  # the run's PNG figures as images


def png_size(data: bytes) -> tuple[int, int, int]:
    """(height, width, channels) of a PNG from its header; ValueError when it is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    colour_type = data[25]
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour_type, 4)
    return height, width, channels


def hparam_value(value: Any) -> bool | int | float | str:
    """A config value as TensorBoard's HParams take it: numbers and strings; lists and null as text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "null"
    return str(list(value) if isinstance(value, tuple) else value)


class TensorBoardLogger(Logger):
    name = "tensorboard"

    def __init__(self, options: TensorBoardOptions | None = None) -> None:
        self.options = options or TensorBoardOptions()
        self.writer: Any = None

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.out_dir / TENSORBOARD_DIR), flush_secs=10)
        config = run.out_dir / CONFIG_FILE
        if config.is_file():
            self.writer.add_text("config", "```yaml\n" + config.read_text() + "```", 0)

    def log_epoch(self, row: Mapping[str, float]) -> None:
        step = int(row["epoch"])
        for tag in HISTORY_TAGS:
            if tag in row:
                self.writer.add_scalar(tag, float(row[tag]), step)

    def pause(self) -> None:
        self.close()  # TensorBoard appends to its event file by name: write it out before it moves

    def finish(self, run: RunInfo, metrics: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        if self.writer is None:  # paused while the run's files moved: a second event file beside
            self.writer = SummaryWriter(log_dir=str(run.out_dir / TENSORBOARD_DIR), flush_secs=10)

        step = int(metrics.get("epochs") or 0)
        finals = final_numbers(metrics)
        for tag, value in finals.items():
            self.writer.add_scalar(tag, value, step)
        params = {k: hparam_value(v) for k, v in flat_config(run.config).items()}
        params["status"] = str(metrics.get("status"))
        for summary in hparams(params, finals):
            self.writer.file_writer.add_summary(summary)
        if self.options.figures:
            self._figures(run.out_dir / PLOTS_DIR, step)
        report = run.out_dir / REPORT_FILE
        if report.is_file():
            self.writer.add_text("report", report.read_text(), step)
        for table in sorted((run.out_dir / TABLES_DIR).glob("*.md")):
            self.writer.add_text(f"tables/{table.stem}", table.read_text(), step)
        if metrics.get("status") != "completed":
            self.writer.add_text("status", f"{metrics.get('status')}: {metrics.get('error', '')}", step)
        self.writer.flush()

    def _figures(self, plots: Path, step: int) -> None:
        """Each PNG as an image summary, its bytes as drawn (no decoding and re-encoding)."""
        from tensorboard.compat.proto.summary_pb2 import Summary  # type: ignore[import-untyped]

        for png in sorted(plots.glob("*.png")):
            data = png.read_bytes()
            height, width, channels = png_size(data)
            image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=data)
            summary = Summary(value=[Summary.Value(tag=f"figures/{png.stem}", image=image)])
            self.writer.file_writer.add_summary(summary, step)

    def logged(self, run: RunInfo) -> bool:
        return any((run.out_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


__all__ = ["TENSORBOARD_DIR", "TensorBoardLogger", "TensorBoardOptions"]
