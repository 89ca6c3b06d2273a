"""`riemexp bench NAME [--option value ...]`: run one benchmark from `riemexp.bench`."""

from __future__ import annotations

import importlib

from riemexp.bench import BENCHES
from riemexp.errors import ConfigError


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        width = max(map(len, BENCHES))
        print("usage: riemexp bench NAME [--help | options]\n\nbenchmarks:")
        for name, (_, text) in BENCHES.items():
            print(f"  {name:<{width}}  {text}")
        return 0
    name = args[0]
    if name not in BENCHES:
        raise ConfigError(f"unknown benchmark '{name}'; expected one of: {', '.join(BENCHES)}")
    return int(importlib.import_module(BENCHES[name][0]).main(args[1:]) or 0)
