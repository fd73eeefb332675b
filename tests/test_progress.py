"""Progress: a bar on a terminal, a bounded number of plain lines (no carriage returns) in a log."""

from __future__ import annotations

import io

import pytest
import torch

from conftest import tiny_generator
from losses.recipe import build_objective
from optinv.engine import progress as P
from optinv.engine.operators import Identity
from optinv.engine.optimize import Problem, Settings, run
from optinv.engine.spaces import make_space


class FakeClock:
    """Advances by ``tick`` seconds every time it is read: a run of known length, no waiting."""

    def __init__(self, tick: float):
        self.t, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_logged_run_writes_a_line_every_few_seconds_and_no_carriage_returns(monkeypatch, capsys):
    clock = FakeClock(0.5)  # 300 steps ≈ 150 s of fake time
    monkeypatch.setattr(P, "_clock", clock)
    monkeypatch.setenv(P.EVERY_ENV, "10")
    g = tiny_generator(16)
    target = torch.rand(1, 3, 16, 16)
    run(g, make_space("wplus", g, batch=1), Problem(target=target, operator=Identity()), build_objective("1*L2"),
        Settings(steps=300, lr=0.01, progress=True))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert 10 <= len(lines) <= clock.t / 10 + 2  # one per 10 s of the run, and a closing one
    first, last = lines[0], lines[-1]
    assert "/300 step" in first and " L2 " in first and "step/s" in first and "left" in first
    assert last.startswith("optimise: 300/300 step (100%)") and " in 0:02:" in last


def test_a_short_run_writes_nothing_to_a_log(capsys):
    bar = P.progress(5, desc="x", stream=None)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert capsys.readouterr().err == ""


def test_line_reports_speed_and_time_left():
    bar = P.LineProgress(100, desc="tune", stream=io.StringIO(), every=10, clock=FakeClock(0.0))
    bar.set_postfix({"loss": "0.012"})
    bar.n = 10
    assert bar.line(now=5.0) == "tune: 10/100 step (10%) loss 0.012 | 2 step/s, 0:00:45 left"
    bar.n = 2
    assert bar.line(now=10.0) == "tune: 2/100 step (2%) loss 0.012 | 5 s/step, 0:08:10 left"
    assert bar.line(now=10.0, done=True).endswith("in 0:00:10")


def test_terminal_gets_a_bar_and_disabled_gets_nothing():
    from tqdm import tqdm

    term = Terminal()
    bar = P.progress(10, stream=term)
    assert isinstance(bar, tqdm)
    bar.close()
    off = P.progress(10, enabled=False, stream=io.StringIO())
    off.update(3)
    off.close()
    assert not isinstance(P.progress(10, stream=io.StringIO()), tqdm)


@pytest.mark.parametrize("value", ["abc", "-1", "0"])
def test_bad_interval_falls_back_to_the_default(monkeypatch, value):
    monkeypatch.setenv(P.EVERY_ENV, value)
    assert P.LineProgress(1, stream=io.StringIO()).every == P.DEFAULT_EVERY


# ------------------------------------------------------------------------------ the long jobs, in a log
def _folder_of_images(folder, n: int, size: int = 16):
    from PIL import Image

    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    for k in range(n):
        pixels = (torch.rand(size, size, 3, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"img{k}.png")
    return folder


def _batch(tmp_path, n_images: int = 2):
    from optinv.engine import jobs
    from optinv.run.batch import BatchConfig, run_batch

    return run_batch(BatchConfig(job="invert", input_dir=_folder_of_images(tmp_path / "in", n_images),
                                 out_dir=tmp_path / "out", model=tiny_generator(16), device="cpu",
                                 options=jobs.JobOptions(space="wplus", recipe="1*L2", steps=12, batch=1)))


def test_batch_in_a_log_writes_lines_for_the_images_and_for_the_steps_of_each(monkeypatch, capsys, tmp_path):
    """An image at 1024² takes an hour on a CPU: a log that only counted images would say nothing for that long."""
    monkeypatch.setattr(P, "_clock", FakeClock(4.0))  # every reading 4 s later: a line every third one
    monkeypatch.setenv(P.EVERY_ENV, "10")
    assert _batch(tmp_path).ok == 2
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.strip().splitlines()
    steps = [ln for ln in lines if ln.startswith("optimise: ")]
    assert len(steps) >= 2 and all("/12 step" in ln and " L2 " in ln for ln in steps)  # each image's steps
    assert lines[-1].startswith("batch: 2/2 img (100%)") and " in " in lines[-1]


def test_batch_on_a_terminal_keeps_one_bar(monkeypatch, tmp_path):
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert _batch(tmp_path, 1).ok == 1
    assert "batch" in term.getvalue() and "optimise" not in term.getvalue()


def test_train_encoder_in_a_log_writes_plain_lines(monkeypatch, capsys, tmp_path):
    from optinv.run import encoder_training
    from optinv.io.checkpoints import save_generator

    monkeypatch.setattr(P, "_clock", FakeClock(4.0))
    monkeypatch.setenv(P.EVERY_ENV, "10")
    model = save_generator(tiny_generator(16, style_dim=16, seed=4), tmp_path / "tiny16.pt")
    encoder_training.main([str(tmp_path / "run"), "--model", str(model), "--width", "16", "--batch", "4",
                           "--image-every", "2", "--kimg", "1", "--max-steps", "4"])
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("encoder wplus: ")]
    assert lines and lines[-1].startswith("encoder wplus: 4/250 step") and " latent " in lines[-1]
