"""Every job at 1024² from both generator formats, through the command line.

The generator has FFHQ's shape where it matters here (1024², 18 latent layers, config-f's layer
list) but 16 channels up to 32², 8 up to 256², 4 above, and 16-dimensional styles: a W+ step
takes about half a second on one core, and writing the 1024² PNGs costs as much as the steps.
It is saved once per test run in rosinality's ``.pt`` layout and as an NVIDIA ``.pkl`` (written
by ``optinv.world.nvidia_writer``); the jobs alternate between the two files, and every latent
is re-rendered with the *other* file: the two must be the same model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from optinv.io.checkpoints import load_generator, model_id, save_rosinality
from optinv.cli import main
from optinv.engine.generator import Generator
from optinv.io.latents import load_latent, render_latent
from optinv.engine.operators import BicubicDownscale
from optinv.io.image_files import to_pil
from optinv.world.nvidia_writer import write_nvidia_style_pickle

SIZE = 1024
OTHER = {"pt": "pkl", "pkl": "pt"}
CHANNELS = {4: 16, 8: 16, 16: 16, 32: 16, 64: 8, 128: 8, 256: 8, 512: 4, 1024: 4}


def tiny_1024(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(SIZE, style_dim=16, n_mlp=2, channels=CHANNELS)
    with torch.no_grad():  # non-zero noise strengths and biases so every path is exercised
        for name, p in g.named_parameters():
            if name.endswith(("noise.weight", "activate.bias", "to_rgb1.bias")):
                p.normal_(0, 0.1)
            if "to_rgb" in name and name.endswith("conv.weight"):  # renders within [-1, 1], as a trained
                p.mul_(0.1)                                         # model's are: nothing lost to clamping
        g.w_avg.copy_(g.mean_latent(500))
    return g.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ffhq_models")
    g = tiny_1024()
    pt = save_rosinality(g, d / "tiny1024.pt")
    config = {**g.config(), "w_avg": g.w_avg}
    config["channels"] = {int(k): v for k, v in config["channels"].items()}
    pkl = write_nvidia_style_pickle(g.state_dict(), config, d / "tiny1024.pkl")
    return {"pt": pt, "pkl": pkl}


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """PULSE's Gaussian fit is cached under $OPTINV_CACHE: a fresh folder, not the user's."""
    old = os.environ.get("OPTINV_CACHE")
    os.environ["OPTINV_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("OPTINV_CACHE", None)
    else:
        os.environ["OPTINV_CACHE"] = old


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def unit(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255


def _png(x: torch.Tensor, path: Path) -> Path:
    Image.fromarray(to_uint8(x)).save(path)
    return path


@pytest.fixture(scope="module")
def images(models, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ffhq_images")
    g = load_generator(models["pt"])
    with torch.no_grad():
        face = (g(torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(7)))[0] + 1) / 2
    out = {"face": _png(face, d / "face.png")}
    for scale in (32, 64):
        out[f"low{scale}"] = _png(BicubicDownscale(scale)(face[None])[0], d / f"low{scale}.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:32, :, :3] = (200, 120, 90)
    rgba[:32, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(d / "ref.png")
    out["ref"] = d / "ref.png"
    return out


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def ok(*args):
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    return r


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def render_of(latent: Path, model: Path) -> np.ndarray:
    """``optinv generate --latent`` of a saved latent with ``model``: the picture, read back."""
    out = latent.parent / "rendered"
    ok("generate", "--latent", latent, "--model", model, "--out", out)
    (path,) = out.glob(latent.name.replace(".latent.pt", ".render.png"))
    return pixels(path)


def rerenders_identically(out: Path, name: str, model: Path) -> None:
    """The saved latent, rendered by ``optinv generate`` with ``model``, is the saved PNG, pixel for pixel."""
    assert np.array_equal(render_of(out / f"{name}.latent.pt", model), pixels(out / f"{name}.png"))


def panels(path: Path, n: int) -> list[np.ndarray]:
    """The n side-by-side SIZE² panels of a strip written with make_grid (2-pixel gaps)."""
    im = pixels(path)
    assert im.shape == (SIZE + 4, n * SIZE + (n + 1) * 2, 3), im.shape
    return [im[2:2 + SIZE, 2 + k * (SIZE + 2):2 + k * (SIZE + 2) + SIZE] for k in range(n)]


def result(out: Path, name: str) -> tuple[dict, list[np.ndarray]]:
    """A job's four files: the 1024² result, and its compare strip (input | result | observed) around it."""
    for kind in (".png", ".latent.pt", ".compare.png", ".json"):
        assert (out / f"{name}{kind}").is_file(), f"{name}{kind} missing"
    assert size_of(out / f"{name}.png") == (SIZE, SIZE)
    strip = panels(out / f"{name}.compare.png", 3)
    assert np.array_equal(strip[1], pixels(out / f"{name}.png"))
    rec = json.loads((out / f"{name}.json").read_text())
    assert rec["model"]["resolution"] == SIZE
    return rec, strip


# ------------------------------------------------------------------------------ the two files
def test_both_formats_load_as_the_same_1024_model(models):
    a, b = load_generator(models["pt"]), load_generator(models["pkl"])
    assert (a.size, a.n_latent, b.size, b.n_latent) == (SIZE, 18, SIZE, 18)
    assert (a.card["source_format"], b.card["source_format"]) == ("rosinality", "nvidia-stylegan2-ada")
    assert model_id(a) == model_id(b) and torch.equal(a.w_avg, b.w_avg)


# ------------------------------------------------------------------------------ the jobs
_inverted: dict[str, Path] = {}
SPACE_FORMAT = {"w": "pt", "wplus": "pkl", "zplus": "pt", "stylemap": "pkl"}


def inverted(space: str, models, images, tmp_path_factory) -> Path:
    """Outputs of `optinv invert --space SPACE` (2 steps), made once and shared by the tests that edit them."""
    if space not in _inverted:
        out = tmp_path_factory.mktemp(f"invert_{space}")
        ok("invert", images["face"], "--model", models[SPACE_FORMAT[space]], "--space", space, "--steps", 2,
           "--loss", "1*L2", "--out", out, "-q")
        _inverted[space] = out
    return _inverted[space]


@pytest.mark.parametrize("space", list(SPACE_FORMAT))
def test_invert_in_every_space(space, models, images, tmp_path_factory):
    out = inverted(space, models, images, tmp_path_factory)
    rec, (shown_input, _, observed) = result(out, "face")
    assert rec["metrics"]["space"] == space and rec["metrics"]["steps"] == 2
    assert np.array_equal(shown_input, pixels(images["face"])) and np.array_equal(observed, pixels(out / "face.png"))
    rerenders_identically(out, "face", models[OTHER[SPACE_FORMAT[space]]])


@pytest.mark.parametrize("scale,fmt", [(32, "pt"), (64, "pkl")])
def test_pulse(scale, fmt, models, images, tmp_path):
    ok("pulse", images[f"low{scale}"], "--scale", scale, "--model", models[fmt], "--steps", 2, "--out", tmp_path, "-q")
    name = f"low{scale}"
    rec, (shown_input, _, observed) = result(tmp_path, name)
    low = pixels(images[name])
    assert low.shape == (SIZE // scale, SIZE // scale, 3) and rec["metrics"]["steps"] == 2
    assert np.array_equal(shown_input, low.repeat(scale, 0).repeat(scale, 1))  # the input, blown up
    # the fit it reports is the saved result, downscaled ×scale by the job's operator, against the input
    down = BicubicDownscale(scale)(unit(pixels(tmp_path / f"{name}.png"))[None])[0]
    mse = float((down - unit(low)).square().mean())
    assert abs(mse - rec["metrics"]["fit_mse"]) < 0.01 * rec["metrics"]["fit_mse"] + 1e-4, (mse, rec["metrics"])
    assert np.array_equal(observed[::scale, ::scale].repeat(scale, 0).repeat(scale, 1), observed)  # blocks
    rerenders_identically(tmp_path, name, models[OTHER[fmt]])


def test_paint(models, images, tmp_path):
    ok("paint", images["ref"], "--model", models["pkl"], "--steps", 2, "--out", tmp_path, "-q")
    rec, _ = result(tmp_path, "ref")
    assert abs(rec["metrics"]["alpha_coverage"] - 0.5) < 1e-6
    rerenders_identically(tmp_path, "ref", models["pt"])


def test_invert_with_tuning(models, images, tmp_path):
    ok("invert", images["face"], "--model", models["pt"], "--tune", "--steps", 1, "--tune-steps", 1,
       "--loss", "1*L2", "--out", tmp_path, "-q")
    result(tmp_path, "face")
    rerenders_identically(tmp_path, "face", models["pkl"])  # the tuning delta applies to either file
    rec = load_latent(tmp_path / "face.latent.pt")
    assert rec.get("tuning")
    untuned = render_latent(load_generator(models["pkl"]), {k: v for k, v in rec.items() if k != "tuning"})
    assert (np.asarray(to_pil(untuned[0])) != pixels(tmp_path / "face.png")).any()  # and it changes the picture


def test_encode_without_an_encoder_says_how_to_train_one(models, images, tmp_path):
    r = invoke("encode", images["face"], "--model", models["pt"], "--out", tmp_path)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "optinv train-encoder" in lines[0], r.output
    assert not list(tmp_path.glob("*.png"))


def test_edit_interpolate_mix_blend_on_produced_latents(models, images, tmp_path, tmp_path_factory):
    a_dir, b_dir = (inverted(s, models, images, tmp_path_factory) for s in ("wplus", "stylemap"))
    a, b = a_dir / "face.latent.pt", b_dir / "face.latent.pt"
    a_png, b_png = pixels(a_dir / "face.png"), pixels(b_dir / "face.png")
    ok("directions", "sefa", "--k", 2, "--model", models["pt"], "--out", tmp_path / "dirs.pt")

    ok("edit", a, "--direction", f"{tmp_path / 'dirs.pt'}:sefa0", "-a", 2, "--out", tmp_path)
    (moved,) = panels(tmp_path / "face.sefa0.png", 1)
    assert not np.array_equal(moved, a_png)
    assert np.array_equal(render_of(tmp_path / "face.sefa0+2.latent.pt", models["pkl"]), moved)  # the strip shows it

    w_dir = inverted("w", models, images, tmp_path_factory)  # two W+ records: the row's ends are those latents
    ok("interpolate", w_dir / "face.latent.pt", a, "-k", 3, "--out", tmp_path / "row")
    first, middle, last = panels(tmp_path / "row" / "face_to_face.png", 3)
    assert np.array_equal(first, pixels(w_dir / "face.png")) and np.array_equal(last, a_png)
    assert not np.array_equal(middle, first) and not np.array_equal(middle, last)

    for command, extra in (("mix", ["--layers", "0-3"]), ("blend", [])):
        out = tmp_path / command
        ok(command, a, b, *extra, "--out", out)
        (strip,) = [p for p in out.glob("*.png")]
        pa, pb, combined = panels(strip, 3)
        assert np.array_equal(pa, a_png) and np.array_equal(pb, b_png)
        assert not np.array_equal(combined, pa) and not np.array_equal(combined, pb)
    (latent,) = out.glob("*.latent.pt")  # the blended style maps, saved: they render as the strip shows
    assert np.array_equal(render_of(latent, models["pt"]), combined)
    # and are not kept at each layer's own side (that was 190 MB here, 5.7 GB for config-f): about b's size
    assert latent.stat().st_size < 1.5 * b.stat().st_size


def test_batch(models, images, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(images["face"].read_bytes())
    ok("batch", src, "--job", "invert", "--model", models["pkl"], "--space", "w", "--steps", 1, "--loss", "1*L2",
       "--out", tmp_path / "out", "-q")
    result(tmp_path / "out", "a")
    (line,) = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert json.loads(line)["status"] == "ok"


def test_align_and_paste_back_at_1024(models, tmp_path):
    from optinv.faces import backend

    if not backend.available():
        pytest.skip("the [faces] extra (dlib) is not installed")
    data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    ok("align", photo, "--size", SIZE, "--out", tmp_path / "aligned")
    assert size_of(tmp_path / "aligned" / "astronaut.png") == (SIZE, SIZE)
    ok("invert", photo, "--align", "--paste-back", "--model", models["pt"], "--space", "w", "--steps", 1,
       "--loss", "1*L2", "--out", tmp_path / "out", "-q")
    result(tmp_path / "out", "astronaut")
    pasted = pixels(tmp_path / "out" / "astronaut.pasted.png")
    original = pixels(photo)
    assert pasted.shape == original.shape
    quad = np.array(json.loads((tmp_path / "aligned" / "astronaut.align.json").read_text())["quad"])
    (x0, y0), (x1, y1) = np.floor(quad.min(0)).astype(int) - 1, np.ceil(quad.max(0)).astype(int) + 1
    changed = (pasted != original).any(axis=2)
    inside = np.zeros_like(changed)
    inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    assert changed[inside].mean() > 0.5 and not changed[~inside].any()  # the face region changes, nothing else


def test_studio_opens_a_1024_model_and_renders_a_slider(models):
    pytest.importorskip("starlette", reason="the studio extra is not installed")
    pytest.importorskip("uvicorn", reason="the studio extra is not installed")
    import io
    import urllib.request

    from optinv.edit.direction_formats import sefa
    from optinv.studio.app import launch

    g = load_generator(models["pkl"])
    running = launch(g)
    try:
        with urllib.request.urlopen(running.url + "api/info", timeout=30) as r:
            info = json.loads(r.read())
        assert (info["size"], info["n_latent"]) == (SIZE, 18)

        def post(path, body):
            req = urllib.request.Request(running.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read()

        page = "ffhqpage0001"
        seed = json.loads(post("api/edit/seed", {"page": page, "seed": 3}))
        running.app.state.studio.directions = {"sefa0": sefa(g, 1)[0][0]}
        frames = [np.asarray(Image.open(io.BytesIO(post("api/edit/render", {"page": page, "a": seed["id"],
                                                                             "alphas": {"sefa0": x}}))))
                  for x in (0, 2)]
        assert frames[0].shape == frames[1].shape == (SIZE, SIZE, 3)
        assert not np.array_equal(frames[0], frames[1])
    finally:
        running.stop()
