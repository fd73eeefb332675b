"""The examples in the public entry points' docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

PUBLIC = ("optinv.engine.jobs", "optinv.engine.operators", "optinv.edit.edits", "optinv.io.ranges",
          "optinv.io.image_files")


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
