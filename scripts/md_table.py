"""One Markdown table for every benchmark section: the columns are every row's keys, first seen first."""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def markdown_table(rows: Iterable[Mapping[str, Any]], skip: tuple[str, ...] = ()) -> list[str]:
    """Header, separator and one line per row (missing cells empty), then a blank line."""
    rows = list(rows)
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in skip))
    return (["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            + ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows] + [""])
