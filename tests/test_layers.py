"""The import graph of the package: arrows only point down.

    commands/                 the Hydra edge (the only importer of hydra)
    runner/                   train, analyse, record a run folder
    analyses/                 steps that read a run and write its files
    plotting/   sweep/        arrays in, figures out (no torch)  |  grids, jobs, summaries
    train.py    ode.py  geometry/   the loop; the maths (no files, no configs but INPUT_DIM)
    nets/                     network kinds, one file each, and their registry
    config.py, io.py, layout.py, errors.py, ...

`import_graph()` reads every module's imports (top level and inside functions) with `ast`; each
test below states one rule and names the imports that break it. `python -m tests.test_layers`
prints the graph between riemexp's packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "riemexp"


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) of every import in the file; with top_level_only, those that run on import
    (module level, outside functions and outside `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if not top_level_only:
                    visit(child, False)
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                if not top_level_only:
                    visit(child, top)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, child.lineno))
                found.extend((f"{child.module}.{alias.name}", child.lineno) for alias in child.names)
            visit(child, top)

    visit(tree, True)
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(
    sources: tuple[str, ...], forbidden: tuple[str, ...], top_level_only: bool = False
) -> list[str]:
    """Imports of any module under `forbidden` by any module under `sources`, as 'file:line imports X'."""
    bad = []
    for name, path in modules():
        if not _within(name, sources):
            continue
        for target, line in imports(path, top_level_only):
            if _within(target, forbidden):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    return sorted(set(bad))


def test_the_maths_knows_nothing_of_steps_figures_commands_sweeps_files_or_memory() -> None:
    above = (
        "riemexp.analyses",
        "riemexp.plotting",
        "riemexp.commands",
        "riemexp.sweep",
        "riemexp.runner",
        "riemexp.train",
        "riemexp.loggers",
        "riemexp.report",
        "riemexp.io",
        "riemexp.tables",
        "riemexp.layout",
        "riemexp.memory",
        "riemexp.budget",
        "riemexp.timing",
        "riemexp.data",
        "matplotlib",
    )
    assert violations(("riemexp.geometry", "riemexp.ode"), above) == []


def test_network_kinds_know_nothing_above_them() -> None:
    above = (
        "riemexp.geometry",
        "riemexp.ode",
        "riemexp.analyses",
        "riemexp.plotting",
        "riemexp.commands",
        "riemexp.sweep",
        "riemexp.runner",
        "riemexp.train",
        "riemexp.ensemble",
    )
    assert violations(("riemexp.nets",), above) == []


def test_network_kind_files_and_their_registry_load_no_torch() -> None:
    """Checking a config names a kind: the registry and the kinds load without torch."""
    assert (
        violations(
            (
                "riemexp.nets.kind",
                "riemexp.nets.registry",
                "riemexp.nets.plain",
                "riemexp.nets.residual",
                "riemexp.nets.c2",
            ),
            ("torch",),
            top_level_only=True,
        )
        == []
    )


def test_plotting_takes_arrays_and_loads_no_torch() -> None:
    assert violations(("riemexp.plotting",), ("torch",), top_level_only=True) == []
    above = ("riemexp.geometry", "riemexp.nets", "riemexp.analyses", "riemexp.runner", "riemexp.commands")
    assert violations(("riemexp.plotting",), above) == []


def test_training_knows_nothing_of_geometry_or_figures() -> None:
    above = ("riemexp.geometry", "riemexp.ode", "riemexp.analyses", "riemexp.plotting", "riemexp.runner")
    assert violations(("riemexp.train", "riemexp.ensemble"), above) == []


def test_analysis_steps_do_not_reach_up_to_the_runner_or_the_commands() -> None:
    # redraw_run reads a run folder back with riemexp.runner.load (a reader, below the runner's
    # execution); nothing else of the runner, and nothing of the commands
    bad = [
        v
        for v in violations(("riemexp.analyses",), ("riemexp.runner", "riemexp.commands"))
        if "riemexp.runner.load" not in v
    ]
    assert bad == []


def package_graph() -> dict[str, set[str]]:
    """riemexp's subpackages and top-level modules -> those they import."""

    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for name, path in modules():
        edges = graph.setdefault(unit(name), set())
        edges.update(unit(t) for t, _ in imports(path) if t.startswith("riemexp.") and unit(t) != unit(name))
    return graph


@pytest.mark.parametrize("unit", ["riemexp.geometry", "riemexp.nets", "riemexp.plotting"])
def test_the_lower_layers_import_no_command_sweep_or_runner(unit: str) -> None:
    assert package_graph()[unit].isdisjoint({"riemexp.commands", "riemexp.sweep", "riemexp.runner"})


if __name__ == "__main__":
    for unit, targets in sorted(package_graph().items()):
        print(f"{unit:22} -> {', '.join(sorted(targets))}")
