"""Tables as files: CSV (the record), Markdown and LaTeX (to paste into a paper).

`write_table(stem, rows, columns)` writes STEM.csv, STEM.md (and STEM.tex on request)
atomically. Rows are dicts; missing values are written empty. Floats keep full precision
in CSV and are rounded to `digits` significant digits in Markdown and LaTeX.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from riemexp.io import atomic_write_csv, atomic_write_text


def format_value(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""

    def numeric(c: str) -> bool:
        return all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows)

    header = "| " + " | ".join(columns) + " |"
    align = "|" + "|".join("---:" if numeric(c) else ":---" for c in columns) + "|"
    body = ["| " + " | ".join(format_value(r.get(c), digits) for c in columns) + " |" for r in rows]
    return "\n".join([header, align, *body]) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
    ):
        text = text.replace(a, b)
    return text


def latex_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 4) -> str:
    """A booktabs `tabular` (needs \\usepackage{booktabs})."""
    spec = "l" + "r" * (len(columns) - 1)
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(_latex_escape(c) for c in columns) + r" \\",
        "\\midrule",
    ]
    for r in rows:
        lines.append(" & ".join(_latex_escape(format_value(r.get(c), digits)) for c in columns) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table(
    stem: str | Path,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    formats: Sequence[str] = ("csv", "md"),
    digits: int = 4,
) -> list[Path]:
    """Write rows as STEM.csv / STEM.md / STEM.tex (any of formats); return the paths."""
    stem = Path(stem)
    rows = list(rows)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "csv":
            atomic_write_csv(path, rows, columns)
        elif fmt == "md":
            atomic_write_text(path, markdown_table(rows, columns, digits))
        elif fmt == "tex":
            atomic_write_text(path, latex_table(rows, columns, digits))
        else:
            raise ValueError(f'Invalid table format "{fmt}". Must be one of {{csv, md, tex}}')
        written.append(path)
    return written
