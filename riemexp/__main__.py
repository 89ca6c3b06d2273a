"""`python -m riemexp` is the `riemexp` command."""

from riemexp.cli import entry

entry()
