"""The README and docs/ as a newcomer uses them: the quickstart's two commands run, every train
command shown composes into a checked config, every link and every `riemexp.NAME` resolves, and
.ci/run runs the README's test command and fails on failures and on "no tests"."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from riemexp.commands.hydra_app import compose_args, to_run_config
from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: the README's quickstart, exactly: one command sets everything up and trains, one runs the tests
QUICKSTART = ["./dev.sh train dataset=spirals", "./dev.sh test"]


def _code_lines(page: Path) -> list[str]:
    """The command lines of a page's shell code blocks, comments and continuations joined."""
    lines: list[str] = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", page.read_text(), re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command:
                lines.append(command)
    return lines


def test_readme_quickstart_is_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the quickstart has one code block"
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands == QUICKSTART
    assert text.index("## Quickstart") < 3000 + text.index("## Gallery"), "the quickstart is near the top"
    assert len(text.splitlines()) <= 250, "the README stays a page read in five minutes"


def _dev_env() -> dict[str, str]:
    """dev.sh pointed at the environment running these tests, which is set up already."""
    prefix = Path(sys.prefix)
    stamp = prefix / ".riemexp-installed"
    if not stamp.is_file() or (REPO / "pyproject.toml").stat().st_mtime > stamp.stat().st_mtime:
        pytest.skip("the tests do not run from a dev.sh environment that is set up (it would install)")
    return {**os.environ, "CI": "true", "RIEMEXP_VENV": str(prefix)}


def test_quickstart_commands_run(tmp_path: Path) -> None:
    """Both quickstart commands through dev.sh as written, in their cheap forms: a short training
    without geometry or figures, and a few of the suite's tests."""
    env = _dev_env()
    run_dir = tmp_path / "run"
    train = shlex.split(QUICKSTART[0]) + [
        "optim.epochs=3",
        "geometry.enabled=false",
        "plot.enabled=false",
        "ode.enabled=false",
        f"hydra.run.dir={run_dir}",
    ]
    out = subprocess.run(train, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (run_dir / "metrics.json").is_file() and (run_dir / "config.yaml").is_file()
    assert "name: spirals" in (run_dir / "config.yaml").read_text()

    test = shlex.split(QUICKSTART[1]) + ["-q", "-p", "no:cacheprovider", "tests/test_docs.py", "-kci_runs"]
    out = subprocess.run(test, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 passed" in out.stdout, out.stdout


def _train_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for line in _code_lines(page):
            words = shlex.split(line)
            if words[:2] != ["riemexp", "train"] or "-m" in words or "--help" in words or "--cfg" in words:
                continue
            found.append((page.name, line))
    return found


@pytest.mark.parametrize("page,line", _train_commands())
def test_documented_train_command_composes(page: str, line: str, monkeypatch) -> None:
    """Every `riemexp train ...` shown composes into a config that passes riemexp's checks (from the
    repository's root, where a --config-dir such as docs/examples/my_conf is)."""
    monkeypatch.chdir(REPO)
    overrides = [w for w in shlex.split(line)[2:] if not w.startswith("hydra.")]
    dcfg = compose_args("train", overrides)
    path = dcfg.dataset.get("path")
    if path is not None and not (REPO / path).is_file():  # a user's own file, e.g. points.tsv
        return
    cfg = to_run_config(dcfg)
    assert cfg.seed is not None


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_links_resolve() -> None:
    """Every relative link in the README and docs/ names a file that exists, and a heading there."""
    broken = []
    for page in PAGES:
        text = page.read_text()
        targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
        for target in targets:
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no file)")
                continue
            if anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no heading)")
    assert not broken, broken


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


#: names in backticks that are not Python: the tags riemexp gives MLflow runs (docs/results.md)
NOT_CODE = {"riemexp.identity", "riemexp.run_dir", "riemexp.status", "riemexp.sweep_dir", "riemexp.job"}


def test_named_code_exists() -> None:
    """Every `riemexp.NAME` and every repository path the pages name is there (modules move)."""
    missing = []
    for page in PAGES:
        text = page.read_text()
        for dotted in set(re.findall(r"`(riemexp(?:\.[A-Za-z_]\w*)+)", text)):
            if dotted not in NOT_CODE and not _resolves(dotted):
                missing.append(f"{page.name}: {dotted}")
        for path in set(re.findall(r"`((?:riemexp|tests|conf|docs|hydra_plugins)/[\w./-]*\w)`", text)):
            if "NAME" not in path and not (REPO / path).exists():
                missing.append(f"{page.name}: {path}")
    assert not missing, missing


def test_no_reference_outside_the_repository() -> None:
    """The repository explains itself: the science is docs/science.md, cited as `docs/science.md §N`."""
    files = [*PAGES, *(REPO / "conf").rglob("*.yaml"), *(REPO / "riemexp").rglob("*.py")]
    files += [*(REPO / "hydra_plugins").rglob("*.py"), REPO / "dev.sh", REPO / "pyproject.toml"]
    assert [str(f.relative_to(REPO)) for f in files if "paper.md" in f.read_text()] == []


def _fake_ci(
    tmp_path: Path, test_exit: int, ruff_exit: int = 0, mypy_exit: int = 0
) -> subprocess.CompletedProcess[str]:
    """.ci/run in a copy of the repository's layout whose dev.sh, ruff and mypy are stand-ins that
    log their calls; the stand-in's `dev.sh test` exits with `test_exit`."""
    (tmp_path / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls"
    for name, code in (("ruff", ruff_exit), ("mypy", mypy_exit)):
        (bin_dir / name).write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> {log}\nexit {code}\n')
    (tmp_path / "dev.sh").write_text(
        f'#!/usr/bin/env bash\necho "dev.sh $*" >> {log}\n[ "$1" = test ] && exit {test_exit}\nexit 0\n'
    )
    for script in [tmp_path / ".ci" / "run", tmp_path / "dev.sh", *bin_dir.iterdir()]:
        script.chmod(0o755)
    out = subprocess.run([str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    out.stdout = log.read_text() if log.is_file() else ""
    return out


@pytest.mark.parametrize("test_exit,ci_exit", [(0, 0), (1, 1), (2, 2), (5, 1)])
def test_ci_runs_the_readme_test_command(tmp_path: Path, test_exit: int, ci_exit: int) -> None:
    """.ci/run sets up, lints, runs `./dev.sh test` and fails when it fails or collects nothing."""
    out = _fake_ci(tmp_path, test_exit)
    assert out.returncode == ci_exit, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "dev.sh setup",
        "ruff check .",
        "ruff format --check .",
        "mypy ",
        "dev.sh test -p no:cacheprovider",
    ]
    if test_exit == 5:
        assert "no tests" in out.stderr


def test_ci_stops_at_lint_and_types(tmp_path: Path) -> None:
    out = _fake_ci(tmp_path / "ruff", test_exit=0, ruff_exit=1)
    assert out.returncode == 1 and "ruff check failed" in out.stderr
    assert "dev.sh test" not in out.stdout
    out = _fake_ci(tmp_path / "mypy", test_exit=0, mypy_exit=1)
    assert out.returncode == 1 and "mypy failed" in out.stderr
    assert "dev.sh test" not in out.stdout
