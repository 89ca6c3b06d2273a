"""Subcommands of the `riemexp` CLI; each module has `main(args: list[str]) -> int`."""
