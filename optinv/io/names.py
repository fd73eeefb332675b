"""Result names, defined once: what one input's results are called, and which files each writes.

One input gives one result called like the input, or, with pulse's ``--duplicates K``, K results
``NAME_dup0`` … ``NAME_dup{K-1}``; every result writes the same set of files. The CLI, ``batch``,
the jobs and the manifest all take their names and suffixes from here.
"""

from __future__ import annotations

import re
from collections.abc import Container

DUP_SEPARATOR = "_dup"
_DUP_TAIL = re.compile(re.escape(DUP_SEPARATOR) + r"\d+$")

RESULT_SUFFIXES = {"image": ".png", "latent": ".latent.pt", "compare": ".compare.png", "json": ".json"}
GIF_SUFFIX = ".gif"


def duplicate_names(name: str, duplicates: int) -> list[str]:
    """The result names of one input: ``[name]``, or ``name_dup0`` … for several answers."""
    return [f"{name}{DUP_SEPARATOR}{d}" for d in range(duplicates)] if duplicates > 1 else [name]


def input_name(result: str, inputs: Container[str]) -> str:
    """The input a result name belongs to: itself when it is an input's name (``x_dup3.png`` stays
    ``x_dup3``), else the name without its ``_dupN`` tail."""
    return result if result in inputs else _DUP_TAIL.sub("", result)


def result_files(name: str, gif: bool = False) -> list[str]:
    """The file names one job result NAME writes."""
    return [name + s for s in RESULT_SUFFIXES.values()] + ([name + GIF_SUFFIX] if gif else [])
