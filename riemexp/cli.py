"""The `riemexp` command: dispatches to subcommands, each a module with `main(args)`.

Hydra lives here and in `riemexp.commands`; the core takes typed configs. Adding a
subcommand is one entry in `COMMANDS` and a module with `main(args: list[str]) -> int`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from riemexp import __version__, console
from riemexp.errors import OutputError, RiemexpError

#: subcommand -> (module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "riemexp.commands.train",
        "train a network, then extract its geometry, tables and figures",
    ),
    "sweep": (
        "riemexp.commands.sweep",
        "a grid of training runs (Hydra multirun: local cores or SLURM), summary tables and figures",
    ),
    "plot-metric": (
        "riemexp.commands.plot_metric",
        "re-draw a saved run's figures (layers, glyphs, GIF) without retraining",
    ),
    "bench": (
        "riemexp.commands.bench",
        "benchmarks: `riemexp bench train`, `riemexp bench geometry`, `riemexp bench sweep`",
    ),
}


def conf_dir() -> Path:
    """The Hydra config folder: inside the installed package, else the repository's conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "conf"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        f"riemexp {__version__}: the Riemannian geometry of neural networks, measured and drawn.",
        "",
        "usage: riemexp COMMAND [OVERRIDES...]      e.g. riemexp train dataset=moons network.depth=20",
        "       riemexp COMMAND --help              config groups and options of a command",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(__version__)
        return 0
    name = args[0]
    if name not in COMMANDS:
        console.error(f"unknown command '{name}'; expected one of: {', '.join(COMMANDS)}")
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(args[1:]) or 0)
    except RiemexpError as err:
        console.error(str(err))
        return err.exit_code
    except OSError as err:  # riemexp reads through its own errors: an OSError here is a write
        error = OutputError.from_os_error(err)
        console.error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


def entry() -> None:
    sys.exit(main())
