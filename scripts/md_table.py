"""One Markdown table for every benchmark section: the columns are every row's keys, first seen first."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

_INNER_STAR = re.compile(r"(?<=\w)\*(?=\w)")  # 1*L2+0.05*EDGE: a product, not emphasis


def cell(value: Any) -> str:
    """A value as a table cell: a recipe's products escaped, or Markdown would set ``L2+0.05`` in italics."""
    return _INNER_STAR.sub(r"\\*", str(value))


def markdown_table(rows: Iterable[Mapping[str, Any]], skip: tuple[str, ...] = ()) -> list[str]:
    """Header, separator and one line per row (missing cells empty), then a blank line."""
    rows = list(rows)
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in skip))
    return (["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            + ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows] + [""])
