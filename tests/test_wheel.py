"""A non-editable install (wheel) finds its configs and writes outputs/ under the current folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_install_runs_from_any_folder(tmp_path: Path) -> None:
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = dist.glob("riemexp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "riemexp/conf/train.yaml" in names and "riemexp/conf/grid/default.yaml" in names
    assert "hydra_plugins/riemexp_sweeper/riemexp_sweeper.py" in names  # riemexp's Hydra sweeper
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "CI": "true"}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import riemexp.cli as c; print(c.__file__); print(c.conf_dir()); "
            "import hydra_plugins.riemexp_sweeper.riemexp_sweeper as s; print(s.__file__)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where
    out = subprocess.run(
        [
            str(site / "bin" / "riemexp"),
            "train",
            "dataset.n_samples=100",
            "network.depth=2",
            "optim.epochs=3",
            "geometry.enabled=false",
            "plot.enabled=false",
            "ode.enabled=false",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert len(list((work / "outputs").glob("*/*/metrics.json"))) == 1
    sweep = subprocess.run(  # the sweep's own Hydra sweeper is found in the installed wheel
        [
            str(site / "bin" / "riemexp"),
            "sweep",
            "grid=none",
            "dataset.n_samples=100",
            "network.depth=2",
            "optim.epochs=3",
            "geometry.enabled=false",
            "ode.enabled=false",
            "hydra/launcher=basic",
            "hydra.sweep.dir=sweep",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sweep.returncode == 0 and "1 jobs: 1 ran" in sweep.stdout, sweep.stdout + sweep.stderr
