"""Result names are defined once: duplicates, the input behind a result, each result's files."""

from __future__ import annotations

from optinv.run import batch
from optinv.io import outputs
from optinv.io.names import RESULT_SUFFIXES, duplicate_names, input_name, result_files


def test_one_answer_keeps_the_input_name_and_several_are_numbered() -> None:
    assert duplicate_names("face", 1) == ["face"]
    assert duplicate_names("face", 3) == ["face_dup0", "face_dup1", "face_dup2"]


def test_the_input_behind_a_result_strips_only_a_trailing_duplicate_number() -> None:
    inputs = {"my_duplicate", "x_dup3", "face"}
    assert input_name("face_dup2", inputs) == "face"
    assert input_name("my_duplicate", inputs) == "my_duplicate"  # "_dup" inside a name is not a duplicate
    assert input_name("my_duplicate_dup0", inputs) == "my_duplicate"
    assert input_name("x_dup3", inputs) == "x_dup3"  # an input's own name wins


def test_every_writer_lists_the_same_result_files() -> None:
    assert result_files("a") == [f"a{s}" for s in RESULT_SUFFIXES.values()]
    assert result_files("a", gif=True)[-1] == "a.gif"
    assert outputs.result_files is result_files
    item = batch.WorkItem(rel="sub/a.png", source=None, stem="a")
    assert [set(o.values()) for o in item.outputs(2)] == [
        {f"sub/{n}" for n in result_files(f"a_dup{d}")} for d in range(2)]
