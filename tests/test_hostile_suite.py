"""scripts/hostile_cases.py under pytest: every hostile and careless case keeps every rule.

One test runs the whole suite in order (some cases build on the one before: the same run
again is kept, a second edit meets the first one's strip); a failure lists each broken case.
"""

from __future__ import annotations

import torch

from conftest import load_script


def test_every_hostile_case_keeps_the_rules(capsys) -> None:
    hostile = load_script("hostile_cases")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = hostile.run(None, verbose=True, limit=120)
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert rc == 0, "\n".join(ln for ln in printed.splitlines() if ln.startswith(("FAIL", "  ")))
