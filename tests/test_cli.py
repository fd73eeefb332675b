"""The command line end to end: each job writes every output; bad input gives one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import ROOT, tiny_generator
from optinv.io.checkpoints import save_generator
from optinv.cli import main
from optinv.engine.operators import BicubicDownscale

OUTPUT_KINDS = (".png", ".latent.pt", ".compare.png", ".json")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    g = tiny_generator(32, style_dim=32, seed=5)
    g.card = {"name": "tiny32", "default_recipes": {"invert": "1*L2"}}
    return save_generator(g, tmp_path_factory.mktemp("model") / "tiny32.pt")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    face = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(face).save(d / "face.png")
    x = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 255
    low = (BicubicDownscale(4)(x)[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
    Image.fromarray(low).save(d / "low.png")
    rgba = np.concatenate([rng.integers(0, 255, (8, 8, 3)), np.zeros((8, 8, 1))], 2).astype(np.uint8)
    rgba[:4, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(d / "ref.png")
    return {"face": d / "face.png", "low": d / "low.png", "ref": d / "ref.png"}


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_outputs(out: Path, name: str) -> dict:
    for kind in OUTPUT_KINDS:
        assert (out / f"{name}{kind}").is_file(), f"{name}{kind} missing"
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    return json.loads((out / f"{name}.json").read_text())


def test_invert_writes_every_output_and_rerenders_bit_exactly(model_file, images, tmp_path) -> None:
    out = tmp_path / "inv"
    r = invoke("invert", images["face"], "--model", model_file, "--steps", "4", "--out", out, "-q", "--gif")
    assert r.exit_code == 0, r.output
    rec = assert_outputs(out, "face")
    assert rec["metrics"]["steps"] == 4 and rec["metrics"]["space"] == "stylemap"
    assert (out / "face.gif").is_file()
    with Image.open(out / "face.compare.png") as im:
        assert im.size[0] > im.size[1]  # input | result | observed, side by side
    r = invoke("generate", "--latent", out / "face.latent.pt", "--model", model_file, "--out", out)
    assert r.exit_code == 0, r.output
    a = np.asarray(Image.open(out / "face.png"))
    b = np.asarray(Image.open(out / "face.render.png"))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("space", ["w", "wplus", "zplus"])
def test_invert_in_every_space(model_file, images, tmp_path, space) -> None:
    r = invoke("invert", images["face"], "--model", model_file, "--steps", "2", "--out", tmp_path, "--space", space,
               "-q", "--loss", "1*L2")
    assert r.exit_code == 0, r.output
    assert assert_outputs(tmp_path, "face")["metrics"]["space"] == space


def test_pulse_with_duplicates(model_file, images, tmp_path) -> None:
    r = invoke("pulse", images["low"], "--scale", "4", "--model", model_file, "--steps", "3", "--out", tmp_path,
               "--duplicates", "2", "-q")
    assert r.exit_code == 0, r.output
    a, b = assert_outputs(tmp_path, "low_dup0"), assert_outputs(tmp_path, "low_dup1")
    assert a["metrics"]["seed"] != b["metrics"]["seed"]
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "low_dup0.png")),
                              np.asarray(Image.open(tmp_path / "low_dup1.png")))


def test_paint(model_file, images, tmp_path) -> None:
    r = invoke("paint", images["ref"], "--model", model_file, "--steps", "3", "--out", tmp_path, "-q")
    assert r.exit_code == 0, r.output
    rec = assert_outputs(tmp_path, "ref")
    assert abs(rec["metrics"]["alpha_coverage"] - 0.5) < 1e-6


def test_info_and_convert(model_file, tmp_path) -> None:
    r = invoke("info", model_file)
    assert r.exit_code == 0 and "resolution: 32" in r.output and "n_latent: 8" in r.output
    assert invoke("info", "--model", model_file).output == r.output  # spelled as the other commands spell it
    assert invoke("info", model_file, "-m", "other.pt").exit_code == 2
    dst = tmp_path / "copy.pt"
    r = invoke("convert", model_file, dst)
    assert r.exit_code == 0, r.output
    from optinv.io.checkpoints import load_generator

    a, b = load_generator(model_file), load_generator(dst)
    z = torch.randn(2, 32)
    with torch.no_grad():
        assert torch.equal(a(z), b(z))


# --------------------------------------------------------------------------- hostile input
def _truncated_png(d: Path) -> Path:
    src = d / "full.png"
    Image.fromarray((np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)).save(src)
    data = src.read_bytes()
    p = d / "truncated.png"
    p.write_bytes(data[: len(data) // 2])
    return p


def _bomb(d: Path) -> Path:
    p = d / "bomb.png"
    Image.new("1", (9000, 9000)).save(p)
    return p


def _malicious_checkpoint(d: Path) -> Path:
    import pickle

    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {d / 'PWNED'}",))

    p = d / "evil.pkl"
    p.write_bytes(pickle.dumps({"G_ema": Payload()}, protocol=2))
    return p


HOSTILE = {
    "missing file": (lambda d: d / "nope.png", [], "no such file"),
    "empty file": (lambda d: (d / "empty.png").write_bytes(b"") and d / "empty.png" or d / "empty.png", [], "empty"),
    "text named png": (lambda d: (d / "t.png").write_text("hello") and d / "t.png", [], "not a readable image"),
    "truncated png": (_truncated_png, [], "truncated|damaged"),
    "1x1 image": (lambda d: Image.new("RGB", (1, 1)).save(d / "one.png") or d / "one.png", [], "too small"),
    "huge image": (_bomb, [], "too large|not a readable image"),
    "bad recipe": (None, ["--loss", "1*FOO"], "unknown loss term"),
    "zero steps": (None, ["--steps", "0"], "steps"),
    "negative steps": (None, ["--steps", "-5"], "steps"),
    "bad stylemap res": (None, ["--stylemap-res", "1,2"], "stylemap-res"),
    "unknown model": (None, ["--model", "no_such_model"], "model not found"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_inputs_give_one_clear_line(case, model_file, images, tmp_path) -> None:
    make, extra, message = HOSTILE[case]
    src = make(tmp_path) if make else images["face"]
    args = ["invert", src, "--steps", "2", "--out", tmp_path / "out", "-q"]
    if "--model" not in extra:
        args += ["--model", model_file]
    r = invoke(*args, *extra)
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    import re
    assert re.search(message, lines[0]), lines[0]
    assert not list((tmp_path / "out").glob("*.png"))  # nothing partial written


def test_corrupt_and_malicious_checkpoints(images, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    for bad, message in ((corrupt, "cannot read|not a model"), (_malicious_checkpoint(tmp_path), "refus|not allowed|unsafe")):
        r = invoke("invert", images["face"], "--model", bad, "--out", tmp_path / "o", "-q")
        assert r.exit_code == 1
        assert r.output.startswith("error:") and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "PWNED").exists()


def test_pulse_scale_must_fit_the_model(model_file, images, tmp_path) -> None:
    r = invoke("pulse", images["low"], "--scale", "3", "--model", model_file, "--out", tmp_path, "-q")
    assert r.exit_code == 1 and "--scale 4" in r.output


def test_paint_needs_alpha_and_some_coverage(model_file, images, tmp_path) -> None:
    r = invoke("paint", images["face"], "--model", model_file, "--out", tmp_path, "-q")
    assert r.exit_code == 1 and "alpha" in r.output
    zero = tmp_path / "zero.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(zero)
    r = invoke("paint", zero, "--model", model_file, "--out", tmp_path, "-q")
    assert r.exit_code == 1 and "alpha is 0 everywhere" in r.output


def test_unwritable_output_folder(model_file, images, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = invoke("invert", images["face"], "--model", model_file, "--out", blocker / "sub", "-q")
    assert r.exit_code == 1 and "cannot write to output folder" in r.output


def test_non_square_needs_crop(model_file, tmp_path) -> None:
    p = tmp_path / "wide.png"
    Image.new("RGB", (48, 32), (100, 50, 20)).save(p)
    r = invoke("invert", p, "--model", model_file, "--out", tmp_path / "o", "-q", "--steps", "1")
    assert r.exit_code == 1 and "--crop center" in r.output
    r = invoke("invert", p, "--model", model_file, "--out", tmp_path / "o", "-q", "--steps", "1", "--crop", "center")
    assert r.exit_code == 0, r.output


def test_samples_exist_for_the_readme() -> None:
    assert len(list((ROOT / "samples" / "images").glob("*.png"))) >= 12
    assert len(list((ROOT / "samples" / "paint").glob("*.png"))) >= 6
    assert len(list((ROOT / "samples" / "lowres").glob("*_x8.png"))) >= 12
