"""Atomic writes, the first line of an error, and the per-model cache location."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_generator
from optinv.io import fileio
from optinv.engine import spaces
from optinv.errors import OptinvError


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path) -> None:
    target = tmp_path / "a.txt"
    fileio.atomic_write_text("first", target)

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises((OSError, OptinvError), match="disk full"):
        fileio.atomic_write(target, fail)
    assert target.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_first_line() -> None:
    assert fileio.first_line(ValueError("one\ntwo")) == "one"
    assert fileio.first_line(ValueError("x" * 300), 120) == "x" * 120
    assert fileio.first_line(KeyError()) == "KeyError"


def test_gaussian_fit_cache_is_where_the_environment_says_and_says_when_written(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(fileio.CACHE_ENV, str(tmp_path / "c"))
    g = tiny_generator(16)
    fit = spaces.gaussian_fit(g, n=2000, chunk=500)
    files = list((tmp_path / "c" / "gaussian_fit").glob("*.pt"))
    assert len(files) == 1 and "cached the Gaussian fit" in capsys.readouterr().err
    again = spaces.gaussian_fit(g, n=2000, chunk=500)
    assert torch.equal(again["mean"], fit["mean"]) and capsys.readouterr().err == ""
    files[0].write_bytes(b"not a tensor file")  # a damaged cache is recomputed, not fatal
    assert torch.equal(spaces.gaussian_fit(g, n=2000, chunk=500)["std"], fit["std"])


def test_an_unwritable_cache_costs_only_time(tmp_path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(fileio.CACHE_ENV, str(blocker / "sub"))
    g = tiny_generator(16)
    fit = spaces.gaussian_fit(g, n=1000, chunk=500)
    assert fit["mean"].shape == (g.style_dim,) and "could not cache" in capsys.readouterr().err
