"""`optinv batch`: one manifest line per input, resume without recomputing, torchrun sharding,
and surviving bad files, NaN, SIGKILL, SIGINT and SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import ROOT, tiny_generator
from optinv.run import batch as ob
from optinv.io.checkpoints import save_generator
from optinv.cli import main

OUTPUT_KINDS = (".png", ".latent.pt", ".compare.png", ".json")
N_IMAGES = 8
NAMES = [f"img{i}" for i in range(N_IMAGES)]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    g = tiny_generator(16, style_dim=16, seed=3)
    g.card = {"name": "tiny16", "default_recipes": {"invert": "1*L2"}}
    return save_generator(g, tmp_path_factory.mktemp("model") / "tiny16.pt")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(0)
    for name in NAMES:
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(d / f"{name}.png")
    (d / "broken.png").write_text("not an image at all")
    return d


def batch_args(inputs: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["batch", str(inputs), "--job", "invert", "--model", str(model), "--out", str(out),
            "--loss", "1*L2", "-q", *extra]


def invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def run_module(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optinv.cli", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def complete(out: Path, name: str) -> bool:
    """All four outputs, and a json that parses: what "written" means."""
    if not all((out / f"{name}{k}").is_file() for k in OUTPUT_KINDS):
        return False
    return json.loads((out / f"{name}.json").read_text())["name"] == name


def assert_clean(out: Path) -> None:
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"
    assert not list(out.glob(".manifest.rank*.jsonl")), "per-rank logs left behind"


@pytest.fixture(scope="module")
def one_process(model_file, inputs, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The reference run: one process, `python -m optinv.cli`, one image per batch."""
    out = tmp_path_factory.mktemp("one") / "out"
    r = run_module(batch_args(inputs, out, model_file, "--steps", "2", "--batch", "1"))
    return out, r


# --------------------------------------------------------------------------- one process
def test_one_process_writes_everything_and_records_the_broken_file(one_process) -> None:
    out, r = one_process
    assert r.returncode == 1, r.stderr
    assert "8 done, 0 skipped, 1 failed" in r.stdout
    for name in NAMES:
        assert complete(out, name)
    recs = manifest(out)
    assert [x["input"] for x in recs] == sorted(["broken.png"] + [f"{n}.png" for n in NAMES])
    by_input = {x["input"]: x for x in recs}
    bad = by_input.pop("broken.png")
    assert bad["status"] == "error" and "not a readable image" in bad["error"] and bad["outputs"] == []
    for rec in by_input.values():
        assert rec["status"] == "ok" and rec["error"] is None
        assert rec["outputs"][0]["latent"] == rec["input"].replace(".png", ".latent.pt")
        assert rec["metrics"][0]["steps"] == 2
    assert_clean(out)


def test_rerun_skips_finished_items_without_rewriting_them(one_process, model_file, inputs, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(one_process[0], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in ("manifest.jsonl", ".optinv.lock")}
    old = {x["input"]: x for x in manifest(out)}
    r = invoke(batch_args(inputs, out, model_file, "--steps", "2"))
    assert r.exit_code == 1  # broken.png is tried again, and fails again
    assert "0 done, 8 skipped, 1 failed" in r.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in ("manifest.jsonl", ".optinv.lock")} == before
    recs = manifest(out)
    assert len(recs) == N_IMAGES + 1
    for rec in recs:  # finished items keep the record of the run that made them
        if rec["input"] != "broken.png":
            assert rec == old[rec["input"]]


def test_torchrun_two_ranks_give_the_same_outputs_as_one_process(one_process, model_file, inputs, tmp_path) -> None:
    # Both runs use --batch 1: an image's result then does not depend on which images share its
    # batch (two ranks batch different neighbours), so PNG bytes can be compared exactly instead
    # of latents within a tolerance. Both runs are subprocesses with one thread, same arithmetic.
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "optinv.cli", *batch_args(inputs, out, model_file, "--steps", "2", "--batch", "1")]
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    assert r.returncode == 1, r.stderr[-3000:]  # rank 0 reports broken.png
    assert "8 done, 0 skipped, 1 failed" in r.stdout
    ref = one_process[0]
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(p.name for p in ref.iterdir())
    for name in NAMES:
        assert (out / f"{name}.png").read_bytes() == (ref / f"{name}.png").read_bytes(), name
    recs = manifest(out)
    assert [x["input"] for x in recs] == [x["input"] for x in manifest(ref)]
    assert {x["rank"] for x in recs} == {0, 1}  # both ranks did work
    assert_clean(out)


# --------------------------------------------------------------------------- killed runs
def wait_for_first_output(proc: subprocess.Popen, out: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not any(out.glob("img*.json")):
        if proc.poll() is not None:
            pytest.fail(f"run ended before any output: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no output appeared in time")
        time.sleep(0.01)


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optinv.cli", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_loses_at_most_the_batch_in_flight(model_file, inputs, tmp_path) -> None:
    out = tmp_path / "out"
    args = batch_args(inputs, out, model_file, "--steps", "30", "--batch", "1")
    proc = start(args)
    wait_for_first_output(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert sum(complete(out, n) for n in NAMES) < N_IMAGES, "run finished before the kill: test proves nothing"
    # what a kill can leave: a temporary file and a log line cut in half
    (out / ".img7.latent.pt.optinv.tmp").write_bytes(b"half a tensor")
    with open(out / ".manifest.rank0.jsonl", "a") as f:
        f.write('{"input": "img7.png", "sta')
    r = invoke(args)
    assert r.exit_code == 1, r.output
    recs = manifest(out)
    assert sorted(x["input"] for x in recs) == sorted(["broken.png"] + [f"{n}.png" for n in NAMES])
    # "skipped-existing": the kill came between an item's last file and its log line
    assert all(x["status"] in ("ok", "skipped-existing") for x in recs if x["input"] != "broken.png")
    assert all(complete(out, n) for n in NAMES)
    assert_clean(out)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_after_the_batch_in_flight(model_file, inputs, tmp_path, sig, code) -> None:
    out = tmp_path / "out"
    proc = start(batch_args(inputs, out, model_file, "--steps", "30", "--batch", "2"))
    wait_for_first_output(proc, out)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-2000:]
    assert f"stopped by {signal.Signals(sig).name}" in stderr and "manifest" in stdout
    written = {n for n in NAMES if (out / f"{n}.json").exists()}
    assert written and len(written) < N_IMAGES
    assert all(complete(out, n) for n in written)
    assert not any((out / f"{n}.png").exists() for n in set(NAMES) - written)
    recs = {x["input"]: x for x in manifest(out)}
    assert {k[:-4] for k, x in recs.items() if x["status"] == "ok"} == written
    assert all(x["status"] in ("pending", "error") for k, x in recs.items() if k[:-4] not in written)
    assert_clean(out)


# --------------------------------------------------------------------------- failures
def test_a_batch_the_job_refuses_is_retried_item_by_item(model_file, tmp_path) -> None:
    d = tmp_path / "low"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name, side in (("a", 4), ("b", 4), ("c", 8)):  # c does not fit --scale 4, and sizes differ
        Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(d / f"{name}.png")
    out = tmp_path / "out"
    r = invoke(["batch", str(d), "--job", "pulse", "--scale", "4", "--duplicates", "2", "--model", str(model_file),
                "--out", str(out), "--steps", "2", "--batch", "3", "-q"])
    assert r.exit_code == 1, r.output
    recs = {x["input"]: x for x in manifest(out)}
    assert recs["c.png"]["status"] == "error" and "--scale 2" in recs["c.png"]["error"]
    for name in ("a", "b"):
        assert recs[f"{name}.png"]["status"] == "ok" and len(recs[f"{name}.png"]["outputs"]) == 2
        assert complete(out, f"{name}_dup0") and complete(out, f"{name}_dup1")


def test_nan_in_one_image_is_recorded(model_file, inputs, tmp_path, monkeypatch) -> None:
    import optinv.engine.jobs as jobs

    real = jobs.invert

    def one_nan(paths, **kw):
        results = real(paths, **kw)
        for r in results:
            if r.name == "img3":
                r.metrics["status"] = "nan"
        return results

    monkeypatch.setattr(jobs, "invert", one_nan)
    cfg = ob.BatchConfig(job="invert", input_dir=inputs, out_dir=tmp_path / "out", model=str(model_file),
                         device="cpu", options=jobs.JobOptions(steps=1, batch=4, recipe="1*L2"), progress=False)
    s = ob.run_batch(cfg)
    assert (s.ok, s.nan, s.failed, s.skipped, s.exit_code) == (7, 1, 1, 0, 1)
    assert {x["input"]: x["status"] for x in manifest(tmp_path / "out")}["img3.png"] == "nan"


def test_job_options_that_do_not_fit_the_job_are_refused(model_file, inputs, tmp_path) -> None:
    r = invoke(batch_args(inputs, tmp_path / "o", model_file, "--scale", "2"))
    assert r.exit_code == 1 and r.output.startswith("error:") and "--job pulse" in r.output
    r = invoke(batch_args(inputs, inputs, model_file))
    assert r.exit_code == 1 and "input folder" in r.output


# --------------------------------------------------------------------------- pieces
def test_work_list_is_sorted_filtered_and_uniquely_named(tmp_path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for rel in ("b.PNG", "a.jpg", "a.png", "c.TIFF", "notes.txt", "._b.png", "sub/x.webp", "sub/deeper/y.bmp",
                ".hidden/z.png", "out/old.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    flat = ob.find_inputs(tmp_path)
    assert [(i.rel, i.stem) for i in flat] == [("a.jpg", "a_jpg"), ("a.png", "a_png"), ("b.PNG", "b"), ("c.TIFF", "c")]
    deep = ob.find_inputs(tmp_path, recursive=True, exclude=(tmp_path / "out").resolve())
    assert [i.rel for i in deep] == ["a.jpg", "a.png", "b.PNG", "c.TIFF", "sub/deeper/y.bmp", "sub/x.webp"]
    assert deep[4].outputs(1)[0]["json"] == "sub/deeper/y.json"


def test_every_rank_runs_the_same_number_of_rounds_and_items_are_split_once() -> None:
    todo = list(range(7))
    per_rank = [list(ob.rounds(todo, r, 3, 2)) for r in range(3)]
    assert {len(b) for b in per_rank} == {2}  # rank 2 has nothing left for round 2 but still joins it
    assert per_rank[0] == [[0, 3], [6]] and per_rank[2] == [[2, 5], []]
    assert sorted(x for b in per_rank for batch in b for x in batch) == todo


def test_manifest_merge_newest_wins_and_claims_are_checked(tmp_path) -> None:
    items = [ob.WorkItem(rel=f"{n}.png", source=tmp_path / f"{n}.png", stem=n) for n in ("done", "lost", "todo")]
    for n in ("done", "lost"):
        for k in OUTPUT_KINDS:
            (tmp_path / f"{n}{k}").write_text(json.dumps({"name": n, "metrics": {"psnr": 9.0}, "notes": []}))
    old = {**ob.make_record(items[0], "error", error="old"), "time": 1.0}
    new = {**ob.make_record(items[0], "ok"), "time": 2.0}
    stale = {**ob.make_record(items[2], "ok"), "time": 3.0}  # claims outputs that are gone
    (tmp_path / ".manifest.rank1.jsonl").write_text(json.dumps(new) + "\n" + json.dumps(stale) + "\n{\"inp")
    (tmp_path / ".manifest.rank0.jsonl").write_text(json.dumps(old) + "\n")
    ob.write_manifest(tmp_path, items, 1)
    recs = {x["input"]: x for x in manifest(tmp_path)}
    assert recs["done.png"]["status"] == "ok"
    assert recs["lost.png"]["status"] == "skipped-existing" and recs["lost.png"]["metrics"] == [{"psnr": 9.0}]
    assert recs["todo.png"]["status"] == "pending"
    assert_clean(tmp_path)


def test_signal_flag_restores_the_previous_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    flag = ob.StopFlag()
    flag.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.signum == signal.SIGTERM
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGTERM) == before
