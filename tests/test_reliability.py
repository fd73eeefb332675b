"""Hostile and careless use: nothing the user has is lost, nothing wrong passes silently.

Each test is named after the behaviour it protects; scripts/hostile_cases.py tries the same
classes of input at scale (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_generator
from optinv.run import batch as ob
from optinv.engine import jobs
from optinv.io.checkpoints import load_generator, save_generator
from optinv.cli import main
from optinv.engine.device import resolve_device
from optinv.errors import CheckpointError, InputImageError, OptinvError
from optinv.io.fileio import atomic_write_text
from optinv.io.image_files import load_image
from optinv.io.latents import save_latent
from optinv.engine.metrics import data_error
from optinv.engine.options import JobOptions
from optinv.io.outputs import OutputLock, plan_names, result_files

RESULT = (".png", ".latent.pt", ".compare.png", ".json")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    g = tiny_generator(32, style_dim=32, seed=5)
    g.card = {"name": "tiny32", "default_recipes": {"invert": "1*L2"}}
    return save_generator(g, tmp_path_factory.mktemp("model") / "tiny32.pt")


def _png(path: Path, seed: int = 0, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r) -> str:
    """The run failed with exactly one 'error:' line and no traceback."""
    assert r.exit_code != 0, r.stdout
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "Error:"))]  # ours, or click's usage
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def fast(model_file: Path, out: Path) -> list:
    return ["--model", model_file, "--steps", "1", "--out", out, "-q", "--space", "w"]


# ----------------------------------------------------------------------------- data loss
def test_an_input_inside_out_is_never_replaced_by_its_result(model_file, tmp_path) -> None:
    photo = _png(tmp_path / "photo.png")
    before = photo.read_bytes()
    r = invoke("invert", photo, *fast(model_file, tmp_path))
    assert r.exit_code == 0, r.stderr
    assert photo.read_bytes() == before
    assert all((tmp_path / f"photo_1{s}").is_file() for s in RESULT)
    assert "results named photo_1" in r.stderr


def test_output_names_are_unique_when_stems_suffixes_and_output_names_collide(model_file, tmp_path) -> None:
    sources = [_png(tmp_path / "d1" / "a.png", 1), _png(tmp_path / "d2" / "a.png", 2), _png(tmp_path / "a_1.png", 3),
               _png(tmp_path / "y.png", 4), _png(tmp_path / "y.compare.png", 5)]
    out = tmp_path / "out"
    r = invoke("invert", *sources, *fast(model_file, out))
    assert r.exit_code == 0, r.stderr
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len(records) == len(sources)  # five results, none overwritten
    assert sorted(rec["name"] for rec in records) == ["a", "a_1", "a_2", "y", "y.compare_1"]
    names = plan_names(["a", "a", "a_1", "y.compare", "y"])
    files = [f for n in names for f in result_files(n)]
    assert len(files) == len(set(files))
    with pytest.raises(OptinvError, match="same file"):  # e.g. two --alpha values that print alike
        plan_names(["a"], lambda n: [n + "+1.latent.pt", n + "+1.latent.pt"])


def test_batch_names_never_collide_and_the_manifest_has_one_line_per_input(model_file, tmp_path) -> None:
    src = tmp_path / "in"
    for i, name in enumerate(["a.png", "a_png.png", "a.jpg", "y.png", "y.compare.png"]):
        _png(src / name, i)
    items = ob.find_inputs(src)
    files = [f for it in items for f in result_files(it.stem)]
    assert len(files) == len(set(files)), [it.stem for it in items]


def _batch_cfg(src: Path, out: Path, **kw) -> ob.BatchConfig:
    return ob.BatchConfig(job="invert", input_dir=src, out_dir=out, model=tiny_generator(32, seed=5), device="cpu",
                          options=JobOptions(steps=1, space="w", batch=2, recipe="1*L2"), progress=False, **kw)


def test_batch_records_any_exception_for_its_item_and_goes_on(tmp_path, monkeypatch) -> None:
    src = tmp_path / "in"
    for i, name in enumerate(["good1.png", "boom.png", "good2.png"]):
        _png(src / name, i)
    real = jobs.invert

    def flaky(paths, **kw):
        if any("boom" in str(p) for p in paths):
            raise OverflowError("int too large to convert")
        return real(paths, **kw)

    monkeypatch.setattr(ob.jobs, "invert", flaky)
    s = ob.run_batch(_batch_cfg(src, tmp_path / "out"))
    assert (s.ok, s.failed) == (2, 1)
    recs = {r["input"]: r for r in map(json.loads, (tmp_path / "out" / "manifest.jsonl").read_text().splitlines())}
    assert recs["boom.png"]["status"] == "error"
    assert recs["boom.png"]["error"] == "OverflowError: int too large to convert"
    assert recs["good1.png"]["status"] == recs["good2.png"]["status"] == "ok"


def test_a_second_run_on_a_locked_out_folder_stops_clearly_and_stale_tmp_files_are_removed(tmp_path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _png(src / "a.png")
    out.mkdir()
    with OutputLock(out):
        with pytest.raises(OptinvError, match="another optinv run .* is writing to"):
            ob.run_batch(_batch_cfg(src, out))
        r = invoke("generate", "--seed", "1", "--out", out)
        assert "is writing to" in one_line_error(r)
    (out / ".a.png.optinv.tmp").write_bytes(b"half")  # left by a killed run
    with OutputLock(out):
        assert not (out / ".a.png.optinv.tmp").exists()


def test_each_batch_of_images_is_written_as_soon_as_it_is_done(model_file, tmp_path, monkeypatch) -> None:
    a, b = _png(tmp_path / "a.png", 1), _png(tmp_path / "b.png", 2)
    out = tmp_path / "out"
    real, calls = jobs.invert, []

    def interrupted(paths, **kw):
        calls.append(paths)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(paths, **kw)

    monkeypatch.setattr(jobs, "invert", interrupted)
    r = invoke("invert", a, b, *fast(model_file, out), "--batch", "1")
    assert r.exit_code == 130
    assert all((out / f"a{s}").is_file() for s in RESULT) and not (out / "b.png").exists()
    monkeypatch.setattr(jobs, "invert", real)
    made = (out / "a.png").stat().st_mtime_ns
    r = invoke("invert", a, b, *fast(model_file, out))  # the re-run keeps a and does b
    assert r.exit_code == 0 and "a: results already in" in r.stdout
    assert (out / "a.png").stat().st_mtime_ns == made and (out / "b.json").is_file()


def test_convert_refuses_its_input_as_target_and_keeps_existing_outputs(model_file, tmp_path) -> None:
    before = model_file.read_bytes()
    assert "is an input of this command" in one_line_error(invoke("convert", model_file, model_file, "--half"))
    assert model_file.read_bytes() == before
    dst = tmp_path / "copy.pt"
    assert invoke("convert", model_file, dst).exit_code == 0
    made = dst.stat().st_mtime_ns
    r = invoke("convert", model_file, dst, "--half")
    assert r.exit_code == 0 and "kept" in r.stdout and dst.stat().st_mtime_ns == made
    assert invoke("convert", model_file, dst, "--half", "--overwrite").exit_code == 0
    assert dst.stat().st_mtime_ns != made


# ----------------------------------------------------------------------------- one-line errors
def test_write_errors_are_one_line(model_file, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert "file" in one_line_error(invoke("generate", "--out", blocker))
    one_line_error(invoke("convert", model_file, blocker / "x.pt"))
    with pytest.raises(OptinvError, match="cannot write"):
        atomic_write_text("x", tmp_path / "missing" / "x.txt")


@pytest.mark.parametrize("name", ["xpu", "mtia", "hpu", "privateuseone", "lazy", "meta", "cdua", "cuda:7"])
def test_absent_or_unknown_devices_are_refused_in_one_line(name: str) -> None:
    if name == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(OptinvError, match="device"):
        resolve_device(name)


def test_a_device_typo_on_the_command_line_is_one_line(model_file, tmp_path) -> None:
    assert "device" in one_line_error(invoke("invert", _png(tmp_path / "a.png"), *fast(model_file, tmp_path / "o"),
                                             "--device", "lazy"))


def _damaged(obj: dict, how: str) -> dict:
    obj = dict(obj)
    if how == "missing key":
        del obj["config"]
    elif how == "wrong shape":
        sd = dict(obj["state_dict"])
        k = next(iter(sd))
        sd[k] = torch.zeros(3)
        obj["state_dict"] = sd
    elif how == "wrong dtype":
        obj["state_dict"] = {k: v.long() for k, v in obj["state_dict"].items()}
    elif how == "wrong type":
        obj["config"] = "not a dict"
    return obj


@pytest.mark.parametrize("how", ["missing key", "wrong shape", "wrong dtype", "wrong type", "truncated"])
def test_damaged_optinv_model_files_are_one_clear_error(model_file, tmp_path, how: str) -> None:
    bad = tmp_path / "bad.pt"
    if how == "truncated":
        bad.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    else:
        torch.save(_damaged(torch.load(model_file, weights_only=True), how), bad)
    with pytest.raises(CheckpointError) as info:
        load_generator(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    assert "damaged" in str(info.value) or "truncated" in str(info.value)


def test_an_optinv_file_of_another_kind_given_as_model_is_named_as_such(model_file, tmp_path) -> None:
    lat = _latent(model_file, tmp_path / "a.latent.pt")
    with pytest.raises(CheckpointError, match="is an optinv latent file, not a generator"):
        load_generator(lat)


@pytest.mark.parametrize("seed", [str(2 ** 64), "-1"])
def test_seeds_out_of_range_are_refused(model_file, tmp_path, seed: str) -> None:
    one_line_error(invoke("generate", "--seed", seed, "--model", model_file, "--out", tmp_path))
    one_line_error(invoke("invert", _png(tmp_path / "a.png"), *fast(model_file, tmp_path / "o"), "--seed", seed))
    with pytest.raises(OptinvError, match="`seed`"):
        JobOptions.of(seed=int(seed))


def test_the_weights_only_refusal_names_what_the_file_asks_to_run(tmp_path) -> None:
    class AsksForCode:
        def __reduce__(self):
            return (os.getpid, ())  # harmless even if it ran; it must not

    path = tmp_path / "evil.pt"
    torch.save({"g_ema": AsksForCode()}, path)
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    msg = str(info.value).replace(str(path), "FILE")
    assert "posix.getpid" in msg and "refused" in msg and "weights_only" not in msg and "\n" not in msg


# ----------------------------------------------------------------------------- silently wrong
def test_a_diverged_optimisation_is_marked_written_and_exits_non_zero(model_file, tmp_path) -> None:
    out = tmp_path / "out"
    r = invoke("invert", _png(tmp_path / "a.png"), "--model", model_file, "--steps", "3", "--out", out, "-q",
               "--space", "w", "--lr", "1e30")
    assert r.exit_code == 1 and "DIVERGED" in r.stdout and "diverged" in r.stderr
    rec = json.loads((out / "a.json").read_text())
    assert rec["metrics"]["diverged"] is True and any("diverged" in n for n in rec["notes"])
    assert (out / "a.latent.pt").is_file()


def test_paint_eps_is_judged_over_the_painted_pixels_only() -> None:
    pred, target = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    alpha = torch.zeros(1, 1, 8, 8)
    alpha[..., 0, 0] = 1
    pred[..., 0, 0] = 1.0  # the one painted pixel is completely wrong
    assert float(data_error(pred, target, alpha)) == pytest.approx(1.0)
    assert float(data_error(pred, target)) == pytest.approx(1 / 64)
    g = tiny_generator(32, seed=5)
    ref = torch.zeros(4, 8, 8)
    ref[:3] = 1.0  # white, far from anything the model makes at its start
    ref[3, :2, :2] = 1.0  # a small painted patch: 4 of 64 pixels
    res = jobs.paint([ref], model=g, device="cpu", steps=3, eps=0.05, recipe="100*L2A", space="w",
                     progress=False)[0]
    # averaged over all pixels the error is 16× smaller and used to "reach" eps at once
    assert res.metrics["masked_mse"] > 0.05 and res.metrics["within_eps"] is False
    assert res.metrics["status"] != "eps" and res.metrics["steps"] == 3


def test_non_finite_numbers_are_refused(model_file, tmp_path) -> None:
    a = _png(tmp_path / "a.png")
    for flag, value in [("--lr", "nan"), ("--eps", "inf"), ("--eps", "nan")]:
        one_line_error(invoke("invert", a, *fast(model_file, tmp_path / "o"), flag, value))
    one_line_error(invoke("generate", "--truncation", "inf", "--model", model_file, "--out", tmp_path / "o"))
    lat = _latent(model_file, tmp_path / "a.latent.pt")
    one_line_error(invoke("edit", lat, "-d", "x", "--alpha", "nan", "--out", tmp_path / "o"))
    direction = tmp_path / "d.pt"
    torch.save(torch.full((32,), float("nan")), direction)
    assert "NaN" in one_line_error(invoke("edit", lat, "-d", direction, "--out", tmp_path / "o"))


def test_16bit_pngs_keep_their_brightness_and_nan_float_tiffs_are_refused(tmp_path) -> None:
    dark = np.full((8, 8), 200, dtype=np.uint16)  # 200 of 65535: nearly black, whatever its own maximum
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    x = load_image(tmp_path / "dark16.png")
    assert float(x[0, 0, 0] * 255) == pytest.approx(1.0, abs=0.6)
    f = np.full((8, 8), 0.5, dtype=np.float32)
    f[2, 3] = np.nan
    Image.fromarray(f, "F").save(tmp_path / "nan.tif")
    with pytest.raises(InputImageError, match="NaN"):
        load_image(tmp_path / "nan.tif")
    ok = np.full((8, 8), 0.5, dtype=np.float32)
    Image.fromarray(ok, "F").save(tmp_path / "half.tif")
    assert float(load_image(tmp_path / "half.tif")[0, 0, 0] * 255) == pytest.approx(128, abs=1)


def _latent(model_file: Path, path: Path, seed: int = 0) -> Path:
    g = load_generator(model_file)
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(seed))
    r = jobs.invert([x], model=g, device="cpu", steps=1, space="wplus", recipe="1*L2", progress=False)[0]
    save_latent(r.latent, path)
    return path


def test_latents_of_two_models_are_never_combined(model_file, tmp_path) -> None:
    other_model = save_generator(tiny_generator(32, style_dim=32, seed=6), tmp_path / "other.pt")
    a = _latent(model_file, tmp_path / "a.latent.pt")
    b = _latent(other_model, tmp_path / "b.latent.pt")
    for cmd in (["mix", a, b, "--layers", "0-3"], ["blend", a, b], ["interpolate", a, b]):
        assert "different models" in one_line_error(invoke(*cmd, "--out", tmp_path / "o"))
    listing = tmp_path / "l.jsonl"
    listing.write_text("".join(json.dumps({"latent": str(p), "smile": k % 2}) + "\n"
                               for k, p in enumerate([a, b, a, b])))
    assert "different models" in one_line_error(invoke("directions", "fit", listing, "--label", "smile",
                                                       "-o", tmp_path / "d.pt"))


@pytest.mark.parametrize("lines, message", [
    (['{"smile": 1}'], "needs keys"),
    (['{"latent": "a.latent.pt", "smile": "yes"}'], "not a finite number"),
    (['[1, 2]'], "JSON object"),
    (['{"latent": "a.latent.pt", "smile": 1}'] * 4, "two different values"),
])
def test_malformed_direction_listings_name_the_problem(model_file, tmp_path, lines, message) -> None:
    _latent(model_file, tmp_path / "a.latent.pt")
    listing = tmp_path / "l.jsonl"
    listing.write_text("\n".join(lines) + "\n")
    assert message in one_line_error(invoke("directions", "fit", listing, "--label", "smile", "-o", tmp_path / "d.pt"))


@pytest.mark.parametrize("k", [-1, 99])
def test_trainable_noise_outside_the_layer_count_is_refused(k: int) -> None:
    with pytest.raises(OptinvError, match="trainable_noise"):
        jobs.invert([torch.zeros(3, 32, 32)], model=tiny_generator(32), device="cpu", steps=1, noise="trainable",
                    trainable_noise=k, recipe="1*L2", progress=False)


# ----------------------------------------------------------------------------- messages and limits
def test_run_notes_are_said_once_and_hints_fit_the_command(tmp_path) -> None:
    g = tiny_generator(32, seed=5)
    g.card = {"name": "nocard"}  # default invert recipe names LPIPS, which falls back offline
    model = save_generator(g, tmp_path / "m.pt")
    out = tmp_path / "out"
    r = invoke("invert", _png(tmp_path / "a.png", 1), _png(tmp_path / "b.png", 2), "--model", model, "--steps", "1",
               "--out", out, "-q", "--space", "w")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("LPIPS backbone not available") == 1
    assert all("LPIPS" in " ".join(json.loads((out / f"{n}.json").read_text())["notes"]) for n in "ab")
    lat = _latent(model, tmp_path / "l.latent.pt")
    Image.new("L", (32, 16)).save(tmp_path / "mask.png")
    msg = one_line_error(invoke("blend", lat, lat, "--mask", tmp_path / "mask.png", "--out", out))
    assert "--crop" not in msg and "square" in msg


def test_pillow_warnings_become_notes_not_terminal_lines(tmp_path) -> None:
    path = tmp_path / "exif.jpg"  # an EXIF block cut short: Pillow warns "Corrupt EXIF data"
    Image.new("RGB", (8, 8)).save(path, exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01\x03\x00"
                                               b"\x01\x00\x00\x00\x06\x00")
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked warning would raise here
        load_image(path, notes=notes)
    assert any("Corrupt EXIF" in n for n in notes)


def test_pulse_takes_low_res_inputs_of_several_sizes(tmp_path) -> None:
    g = tiny_generator(32, seed=5)
    x8, x4 = torch.rand(3, 4, 4), torch.rand(3, 8, 8)
    res = jobs.pulse([x8, x4, x8.clone()], model=g, device="cpu", steps=1, progress=False)
    assert [r.target.shape[-1] for r in res] == [4, 8, 4]
    assert [r.name for r in res] == ["image000", "image001", "image002"]


def test_absurd_values_are_refused_before_any_work(model_file, tmp_path) -> None:
    a = _png(tmp_path / "a.png")
    assert "--steps" in one_line_error(invoke("invert", a, *fast(model_file, tmp_path / "o"), "--steps", 10 ** 9))
    assert "is 0" in one_line_error(invoke("invert", a, *fast(model_file, tmp_path / "o"), "--loss", "0*L2+0*L1"))
    huge = tmp_path / "huge.png"
    Image.new("1", (7900, 7900)).save(huge)  # 62 megapixels, 8 MB as bits, ~190 MB once decoded as RGB
    with pytest.raises(InputImageError, match="too large"):
        load_image(huge)
