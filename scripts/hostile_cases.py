#!/usr/bin/env python
"""Try hostile and careless uses of every command and check that nothing is lost or silently wrong.

Every case is made on the spot in a temporary folder (nothing hostile is stored in the
repository), run through the real ``optinv`` command (in-process, with click's runner) and
checked against the project's rules:

- the run ends as expected: ``ok`` (exit 0), ``kept`` (exit 0, an existing result kept),
  ``error`` (exit ≠ 0 with exactly one ``error:`` line, or click's one usage line) or
  ``diverged`` (results written, marked, exit 1);
- no traceback, ever; no input file changes; no ``.NAME.optinv.tmp`` file is left behind;
- nothing from a hostile file runs (the pickles here would only call ``os.getpid``).

  python scripts/hostile_cases.py                  # every class; prints the table of docs/RELIABILITY.md
  python scripts/hostile_cases.py --only images -v # one class, one line per case
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from optinv.io.checkpoints import save_generator
from optinv.cli import main as optinv_main
from optinv.engine.generator import Generator

EXPECT = ("ok", "kept", "error", "diverged")


@dataclass
class Case:
    group: str
    name: str
    args: Callable[["World"], list]   # the command line, made once the world exists
    expect: str                       # one of EXPECT
    inputs: Callable[["World"], list[Path]] = field(default=lambda w: [])  # must stay unchanged
    before: Callable[["World"], contextlib.AbstractContextManager] | None = None
    verify: Callable[["World"], str] | None = None  # after the run: what is wrong with its result ("" = nothing)


class AsksForCode:
    """Pickled as a call to os.getpid: harmless if it ever ran; optinv must refuse it."""

    def __reduce__(self):
        return (os.getpid, ())


# ------------------------------------------------------------------------------ the world
class World:
    """A tiny model, a few good inputs and every hostile file, all under one temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model = save_generator(_tiny(5), root / "tiny.pt")
        self.other_model = save_generator(_tiny(6), root / "other.pt")
        self.img = self._rgb("face.png", 32)
        self.low4, self.low8 = self._rgb("low4.png", 4), self._rgb("low8.png", 8)
        self.ref = root / "ref.png"
        rgba = np.concatenate([_noise(8, 8, 3, 1), np.zeros((8, 8, 1), np.uint8)], 2)
        rgba[:3, :3, 3] = 255
        Image.fromarray(rgba, "RGBA").save(self.ref)
        self.latent = self._latent(self.model, "a.latent.pt")
        self.other_latent = self._latent(self.other_model, "b.latent.pt")
        self.files: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        return self.root / name

    def out(self, name: str) -> Path:
        return self.root / "out" / name

    def _rgb(self, name: str, side: int, seed: int = 0) -> Path:
        p = self.root / name
        Image.fromarray(_noise(side, side, 3, seed)).save(p)
        return p

    def _latent(self, model: Path, name: str) -> Path:
        from optinv.engine import jobs
        from optinv.io.checkpoints import load_generator
        from optinv.io.latents import save_latent

        x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
        r = jobs.invert([x], model=load_generator(model), device="cpu", steps=1, space="wplus", recipe="1*L2",
                        progress=False)[0]
        return save_latent(r.latent, self.root / name)

    def variant(self, k: int) -> Path:
        """The latent moved by k/10 along its first coordinate (k = 0: the latent itself)."""
        if k == 0:
            return self.latent
        from optinv.io.latents import save_latent

        rec = torch.load(self.latent, weights_only=True)
        rec["wplus"] = rec["wplus"].clone()
        rec["wplus"][:, 0] += k / 10
        rec["tensors"] = {"wplus": rec["wplus"][None].clone()}
        return save_latent(rec, self.root / f"variant{k}.latent.pt")

    def make(self, name: str, write: Callable[[Path], object]) -> Path:
        """A hostile file, made once and remembered by name."""
        if name not in self.files:
            p = self.root / "hostile" / name
            p.parent.mkdir(parents=True, exist_ok=True)
            write(p)
            self.files[name] = p
        return self.files[name]


def _tiny(seed: int) -> Generator:
    torch.manual_seed(seed)
    g = Generator(32, 32, 2, channels={4: 64, 8: 64, 16: 32, 32: 16})
    with torch.no_grad():  # non-zero noise strengths and biases, as a trained model has
        for name, p in g.named_parameters():
            if name.endswith(("noise.weight", "activate.bias", "to_rgb1.bias")):
                p.normal_(0, 0.1)
        g.w_avg.copy_(g.mean_latent(500))
    g.card = {"name": f"tiny{seed}", "default_recipes": {"invert": "1*L2"}}
    return g.eval().requires_grad_(False)


def _noise(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, c)) * 255).astype(np.uint8)


# ------------------------------------------------------------------------------ hostile files
def _save(im: Image.Image, **kw) -> Callable[[Path], object]:
    return lambda p: im.save(p, **kw)


def _bytes(data: bytes) -> Callable[[Path], object]:
    return lambda p: p.write_bytes(data)


def _torch(obj) -> Callable[[Path], object]:
    return lambda p: torch.save(obj, p)


def _half_of(src: Callable[[World], Path]) -> Callable[[World], Callable[[Path], object]]:
    return lambda w: (lambda p: p.write_bytes(src(w).read_bytes()[: src(w).stat().st_size // 2]))


def _float_tiff(nan: bool) -> Callable[[Path], object]:
    def write(p: Path) -> None:
        a = np.full((32, 32), 0.5, np.float32)
        if nan:
            a[3, 4] = np.nan
        Image.fromarray(a, "F").save(p)
    return write


def _model_obj(w: World, how: str):
    obj = torch.load(w.model, weights_only=True)
    sd = dict(obj["state_dict"])
    if how == "no config":
        del obj["config"]
    elif how == "wrong shape":
        sd[next(iter(sd))] = torch.zeros(3)
    elif how == "int weights":
        sd = {k: v.long() for k, v in sd.items()}
    elif how == "config a string":
        obj["config"] = "size=32"
    elif how == "NaN weights":
        sd = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in sd.items()}
    obj["state_dict"] = sd
    return obj


def _latent_obj(w: World, how: str):
    rec = torch.load(w.latent, weights_only=True)
    if how == "no noise":
        del rec["noise"]
    elif how == "wrong shape":
        rec["wplus"] = torch.zeros(3, 5)
    elif how == "int tensors":
        rec["wplus"] = rec["wplus"].long()
    elif how == "NaN":
        rec["wplus"] = torch.full_like(rec["wplus"], float("nan"))
    elif how == "1e30":
        rec["wplus"] = torch.full_like(rec["wplus"], 1e30)
        rec["tensors"] = {"wplus": rec["wplus"][None].clone()}
    return rec


def _listing(w: World, lines: list) -> Callable[[Path], object]:
    return lambda p: p.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


# ------------------------------------------------------------------------------ the cases
def cases() -> list[Case]:
    c: list[Case] = []

    def invert(w: World, src: Path, *extra) -> list:
        return ["invert", src, "--model", w.model, "--steps", "1", "--space", "w", "-q", *extra,
                "--out", w.out(src.stem + "_" + str(abs(hash(str(extra))) % 10 ** 6))]

    # images: every odd file a user may hand over
    images = [
        ("empty file", _bytes(b""), "x.png", "error"), ("text renamed .png", _bytes(b"hello"), "t.png", "error"),
        ("truncated png", lambda p: p.write_bytes(_png_bytes()[:60]), "cut.png", "error"),
        ("1x1 pixel", _save(Image.new("RGB", (1, 1))), "tiny.png", "error"),
        ("62 MP bilevel png", _save(Image.new("1", (7900, 7900))), "huge.png", "error"),
        ("dark 16-bit png", lambda p: Image.fromarray(np.full((32, 32), 200, np.uint16)).save(p), "d16.png", "ok"),
        ("float tiff with NaN", _float_tiff(True), "nan.tif", "error"),
        ("float tiff", _float_tiff(False), "f.tif", "ok"),
        ("palette + transparency", lambda p: Image.new("P", (32, 32)).save(p, transparency=0), "pal.png", "ok"),
        ("CMYK jpeg", _save(Image.new("CMYK", (32, 32), (10, 20, 30, 40))), "cmyk.jpg", "ok"),
        ("corrupt EXIF jpeg", lambda p: Image.new("RGB", (32, 32)).save(
            p, exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"),
         "exif.jpg", "ok"),
        ("grayscale + alpha", _save(Image.new("LA", (32, 32))), "la.png", "ok"),
        ("animated gif", lambda p: Image.new("P", (32, 32)).save(p, save_all=True, append_images=[Image.new("P", (32, 32))]),
         "anim.gif", "ok"),
        ("not square", _save(Image.new("RGB", (40, 32))), "wide.png", "error"),
        ("a folder named x.png", lambda p: p.mkdir(), "dir.png", "error"),
    ]
    for name, write, fname, expect in images:
        c.append(Case("images", name, lambda w, write=write, fname=fname: invert(w, w.make(fname, write)), expect,
                      lambda w, fname=fname: [w.files[fname]] if w.files[fname].is_file() else []))
    c.append(Case("images", "missing file", lambda w: invert(w, w.path("nope.png")), "error"))
    c.append(Case("images", "paint reference without alpha", lambda w: ["paint", w.img, "--model", w.model, "--steps",
                                                                         "1", "-q", "--out", w.out("p1")], "error"))
    c.append(Case("images", "paint alpha 0 everywhere",
                  lambda w: ["paint", w.make("a0.png", _save(Image.new("RGBA", (8, 8)))), "--model", w.model,
                             "--steps", "1", "-q", "--out", w.out("p2")], "error"))

    # model files
    models = [
        ("empty", lambda w: _bytes(b"")), ("text", lambda w: _bytes(b"not a model")),
        ("truncated torch zip", _half_of(lambda w: w.model)),
        ("pickle asking for code", lambda w: _torch({"g_ema": AsksForCode()})),
        ("optinv file without config", lambda w: _torch(_model_obj(w, "no config"))),
        ("weight of wrong shape", lambda w: _torch(_model_obj(w, "wrong shape"))),
        ("integer weights", lambda w: _torch(_model_obj(w, "int weights"))),
        ("config a string", lambda w: _torch(_model_obj(w, "config a string"))),
        ("NaN weights", lambda w: _torch(_model_obj(w, "NaN weights"))),
        ("a latent given as model", lambda w: (lambda p: shutil.copy(w.latent, p))),
        ("rosinality dict without weights", lambda w: _torch({"g_ema": {}, "latent_avg": torch.zeros(3)})),
        ("a list", lambda w: _torch([1, 2, 3])),
    ]
    for name, make in models:
        fname = "model_" + name.replace(" ", "_") + ".pt"
        c.append(Case("model files", name, lambda w, make=make, fname=fname: ["info", w.make(fname, make(w))],
                      "error", lambda w, fname=fname: [w.files[fname]]))
    c.append(Case("model files", "missing", lambda w: ["info", w.path("nope.pt")], "error"))
    c.append(Case("model files", "a folder", lambda w: ["info", w.root], "error"))

    # latent files
    latents = [
        ("truncated", _half_of(lambda w: w.latent)), ("missing key", lambda w: _torch(_latent_obj(w, "no noise"))),
        ("wrong shape", lambda w: _torch(_latent_obj(w, "wrong shape"))),
        ("integer tensors", lambda w: _torch(_latent_obj(w, "int tensors"))),
        ("NaN values", lambda w: _torch(_latent_obj(w, "NaN"))),
        ("pickle asking for code", lambda w: _torch({"format": "optinv-latent", "x": AsksForCode()})),
    ]
    for name, make in latents:
        fname = "lat_" + name.replace(" ", "_") + ".latent.pt"
        c.append(Case("latent files", name, lambda w, make=make, fname=fname: [
            "generate", "--latent", w.make(fname, make(w)), "--out", w.out("lat")], "error",
            lambda w, fname=fname: [w.files[fname]]))
    c.append(Case("latent files", "made with another model than --model",
                  lambda w: ["generate", "--latent", w.other_latent, "--model", w.model, "--out", w.out("lat")],
                  "error", lambda w: [w.other_latent]))

    # numbers
    numbers = [
        ("--seed -1", ["--seed", "-1"], "error"), ("--seed 2**64", ["--seed", str(2 ** 64)], "error"),
        ("--steps 0", ["--steps", "0"], "error"), ("--steps 10**9", ["--steps", str(10 ** 9)], "error"),
        ("--lr nan", ["--lr", "nan"], "error"), ("--lr inf", ["--lr", "inf"], "error"),
        ("--lr -1", ["--lr", "-1"], "error"), ("--lr 1e31", ["--lr", "1e31"], "error"),
        ("--lr 1e30 (diverges)", ["--lr", "1e30", "--steps", "3"], "diverged"),
        ("--eps inf", ["--eps", "inf"], "error"), ("--eps nan", ["--eps", "nan"], "error"),
        ("--eps -1", ["--eps", "-1"], "error"),
        ("--trainable-noise -1", ["--noise", "trainable", "--trainable-noise", "-1"], "error"),
        ("--trainable-noise 99", ["--noise", "trainable", "--trainable-noise", "99"], "error"),
        ("--batch 0", ["--batch", "0"], "error"), ("--loss 0*L2", ["--loss", "0*L2+0*L1"], "error"),
        ("--loss empty", ["--loss", " "], "error"), ("--loss unknown term", ["--loss", "2*FOO"], "error"),
        ("--loss inf weight", ["--loss", "inf*L2"], "error"), ("--loss nan weight", ["--loss", "nan*L2"], "error"),
    ]
    for name, extra, expect in numbers:
        c.append(Case("numbers", name, lambda w, extra=extra: invert(w, w.img, *extra), expect, lambda w: [w.img]))
    c.append(Case("numbers", "pulse --duplicates 0", lambda w: ["pulse", w.low8, "--model", w.model, "--steps", "1",
                                                               "--duplicates", "0", "-q", "--out", w.out("d0")], "error"))
    for flag, value in [("--truncation", "nan"), ("--truncation", "inf"), ("--seed", "-5")]:
        c.append(Case("numbers", f"generate {flag} {value}", lambda w, f=flag, v=value: [
            "generate", f, v, "--model", w.model, "--out", w.out("gen")], "error"))
    for value in ("nan", "inf", "-inf"):
        c.append(Case("numbers", f"edit --alpha {value}", lambda w, v=value: [
            "edit", w.latent, "-d", "smile", "--alpha", v, "--out", w.out("ed")], "error", lambda w: [w.latent]))

    # devices
    for dev in ("xpu", "mtia", "hpu", "privateuseone", "lazy", "mps", "meta", "cdua", "cuda:7", ""):
        c.append(Case("devices", f"--device {dev!r}", lambda w, d=dev: invert(w, w.img, "--device", d), "error",
                      lambda w: [w.img]))

    # where outputs go
    def inside(w: World) -> list:
        d = w.root / "inplace"
        d.mkdir(exist_ok=True)
        src = d / "photo.png"
        if not src.exists():
            shutil.copy(w.img, src)
        return ["invert", src, "--model", w.model, "--steps", "1", "--space", "w", "-q", "--out", d]

    def collide(w: World) -> list:
        srcs = []
        for rel, seed in [("c1/a.png", 1), ("c2/a.png", 2), ("a_1.png", 3), ("y.png", 4), ("y.compare.png", 5)]:
            p = w.root / "collide" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                Image.fromarray(_noise(32, 32, 3, seed)).save(p)
            srcs.append(p)
        return ["invert", *srcs, "--model", w.model, "--steps", "1", "--space", "w", "-q", "--out", w.out("collide")]

    def collide_inputs(w: World) -> list[Path]:
        return sorted((w.root / "collide").rglob("*.png"))

    c += [
        Case("outputs", "input inside --out", inside, "ok", lambda w: [w.root / "inplace" / "photo.png"]),
        Case("outputs", "same run again (kept)", inside, "kept", lambda w: [w.root / "inplace" / "photo.png"]),
        Case("outputs", "colliding stems and output names", collide, "ok", collide_inputs),
        Case("outputs", "--out is a file", lambda w: invert(w, w.img)[:-2] + ["--out", w.img], "error", lambda w: [w.img]),
        Case("outputs", "convert X X --half", lambda w: ["convert", w.model, w.model, "--half"], "error",
             lambda w: [w.model]),
        Case("outputs", "convert into a file's 'folder'", lambda w: ["convert", w.model, w.img / "m.pt"], "error",
             lambda w: [w.model, w.img]),
        Case("outputs", "export a latent over itself", lambda w: ["export", w.latent, "--format", "rosinality", "-o",
                                                                  w.latent], "error", lambda w: [w.latent]),
        Case("outputs", "convert to a new file", lambda w: ["convert", w.model, w.out("m.pt")], "ok"),
        Case("outputs", "convert to an existing file (kept)", lambda w: ["convert", w.model, w.out("m.pt")], "kept"),
        Case("outputs", "second run while the folder is locked", lambda w: invert(w, w.img, "--seed", "3"), "error",
             lambda w: [w.img], before=lambda w: _locked(invert(w, w.img, "--seed", "3")[-1])),
        Case("outputs", "stale .tmp from a killed run", lambda w: _with_stale_tmp(w, invert(w, w.img, "--seed", "4")),
             "ok", lambda w: [w.img]),
    ]

    # listings for directions fit
    lat = lambda w: str(w.latent)  # noqa: E731
    listings = [
        ("missing file", None, "error"), ("not JSON", ["{nope"], "error"), ("a JSON list", ["[1, 2]"], "error"),
        ("missing keys", [{"smile": 1}], "error"), ("label not a number", "yes", "error"), ("label NaN", "NaN", "error"),
        ("one class only", 1, "error"), ("empty", [], "error"),
    ]
    for name, lines, expect in listings:
        def args(w: World, name=name, lines=lines) -> list:
            fname = "listing_" + name.replace(" ", "_") + ".jsonl"
            if lines is None:
                path = w.path("nope.jsonl")
            elif isinstance(lines, list):
                path = w.make(fname, _listing(w, lines))
            elif lines == "NaN":
                path = w.make(fname, _listing(w, [f'{{"latent": "{lat(w)}", "smile": NaN}}'] * 4))
            else:
                path = w.make(fname, _listing(w, [{"latent": lat(w), "smile": lines}] * 4))
            return ["directions", "fit", path, "--label", "smile", "-o", w.out("dir.pt")]
        c.append(Case("direction listings", name, args, expect))
    c.append(Case("direction listings", "latents of two models", lambda w: [
        "directions", "fit", w.make("two_models.jsonl", _listing(w, [
            {"latent": str(p), "smile": k % 2} for k, p in enumerate([w.latent, w.other_latent] * 2)])),
        "--label", "smile", "-o", w.out("dir2.pt")], "error"))

    # direction files
    directions = [("NaN vector", torch.full((32,), float("nan"))), ("zero vector", torch.zeros(32)),
                  ("wrong length", torch.ones(7)), ("pickle asking for code", {"x": AsksForCode()})]
    for name, obj in directions:
        fname = "dir_" + name.replace(" ", "_") + ".pt"
        c.append(Case("direction files", name, lambda w, obj=obj, fname=fname: [
            "edit", w.latent, "-d", w.make(fname, _torch(obj)), "--out", w.out("ed2")], "error",
            lambda w: [w.latent]))
    c.append(Case("direction files", "integer vector (converted)", lambda w: [
        "edit", w.latent, "-d", w.make("dir_int.pt", _torch(torch.ones(32, dtype=torch.long))), "--out",
        w.out("ed3")], "ok", lambda w: [w.latent]))

    # combining
    c += [
        Case("combining", "mix latents of two models", lambda w: ["mix", w.latent, w.other_latent, "--layers", "0-3",
                                                                  "--out", w.out("mix")], "error"),
        Case("combining", "blend latents of two models", lambda w: ["blend", w.latent, w.other_latent, "--out",
                                                                    w.out("mix")], "error"),
        Case("combining", "interpolate latents of two models", lambda w: ["interpolate", w.latent, w.other_latent,
                                                                          "--out", w.out("mix")], "error"),
        Case("combining", "blend with a non-square mask", lambda w: [
            "blend", w.latent, w.latent, "--mask", w.make("mask.png", _save(Image.new("L", (40, 32)))),
            "--out", w.out("mix")], "error"),
        Case("combining", "pulse on x4 and x8 inputs together", lambda w: [
            "pulse", w.low4, w.low8, "--model", w.model, "--steps", "1", "-q", "--out", w.out("pulse")], "ok",
            lambda w: [w.low4, w.low8]),
    ]

    # batch folders
    def batch_dir(w: World) -> Path:
        d = w.root / "batchin"
        if not d.exists():
            d.mkdir()
            shutil.copy(w.img, d / "good.png")
            shutil.copy(w.img, d / "good.jpg.png")
            (d / "broken.png").write_bytes(b"\x89PNG broken")
            Image.new("RGB", (1, 1)).save(d / "dot.png")
        return d

    c += [
        Case("batch", "folder with broken files (each fails alone)", lambda w: [
            "batch", batch_dir(w), "--job", "invert", "--model", w.model, "--steps", "1", "--space", "w", "-q",
            "--out", w.out("batch")], "error", lambda w: sorted(batch_dir(w).iterdir())),
        Case("batch", "--out is the input folder", lambda w: [
            "batch", batch_dir(w), "--job", "invert", "--model", w.model, "--out", batch_dir(w)], "error",
            lambda w: sorted(batch_dir(w).iterdir())),
        Case("batch", "folder locked by another run", lambda w: [
            "batch", batch_dir(w), "--job", "invert", "--model", w.model, "--steps", "1", "-q", "--out",
            w.out("batch_locked")], "error", lambda w: sorted(batch_dir(w).iterdir()),
            before=lambda w: _locked(w.out("batch_locked"))),
    ]
    return c + second_round()


def second_round() -> list[Case]:
    """Issue 31: absurd magnitudes, names from files, links and partial writes."""
    c: list[Case] = []
    unit = lambda w: w.make("dir_unit.pt", _torch(torch.eye(32)[0]))  # noqa: E731

    def edit(w: World, *extra) -> list:
        return ["edit", w.latent, *extra, "--out", w.out("ed_r2")]

    magnitudes = [
        ("edit -e bangs=nan", lambda w: edit(w, "-e", "bangs=nan")),
        ("edit -e bangs=inf", lambda w: edit(w, "-e", "bangs=inf")),
        ("edit -a 1e30", lambda w: edit(w, "-d", unit(w), "-a", "1e30")),
        ("direction of 1e38", lambda w: edit(w, "-d", w.make("dir_1e38.pt", _torch(torch.full((32,), 1e38))), "-a", "1")),
        ("GANSpace lat_stdev 1e30", lambda w: edit(w, "-d", f"{w.make('gs.npz', _ganspace(1e30))}:pc0", "-a", "1")),
        ("generate --truncation 1e30", lambda w: ["generate", "--model", w.model, "--truncation", "1e30", "--out",
                                                 w.out("gen_r2")]),
        ("edit --paste-back without alignment", lambda w: edit(w, "-d", unit(w), "-a", "1", "--paste-back")),
        ("generate a latent file of 1e30", lambda w: ["generate", "--latent", w.make("huge.latent.pt", _torch(
            _latent_obj(w, "1e30"))), "--model", w.model, "--out", w.out("gen_r2")]),
    ]
    for name, args in magnitudes:
        c.append(Case("magnitudes", name, args, "error", lambda w: [w.latent]))
    for recipe in ("1*WAVG", "1*GEOCROSS", "1*SMOOTH", "1*DOMAIN", "0*L2+1e-300*L1"):
        c.append(Case("magnitudes", f"--loss {recipe}", lambda w, r=recipe: [
            "invert", w.img, "--model", w.model, "--steps", "1", "-q", "--loss", r, "--out", w.out("noData")],
            "error", lambda w: [w.img]))

    def discover(w: World, *extra) -> list:
        return ["directions", "discover", "--model", w.model, "--steps", "1", "--k", "2", "--predictor", "none",
                *extra]

    for flag, value in [("--alpha", "nan"), ("--speed", "inf"), ("--max-minutes", "nan"), ("--max-minutes", "-1"),
                        ("--steps", str(10 ** 9)), ("--batch", str(10 ** 8))]:
        c.append(Case("magnitudes", f"discover {flag} {value}", lambda w, f=flag, v=value: discover(
            w, f, v, "-o", w.out("disc.pt")), "error"))
    c += [
        Case("magnitudes", "interpolate --steps 10**8", lambda w: [
            "interpolate", w.latent, w.latent, "--steps", str(10 ** 8), "--out", w.out("row")], "error"),
        Case("magnitudes", "fit on identical latents", lambda w: [
            "directions", "fit", w.make("same.jsonl", _listing(w, [{"latent": str(w.latent), "smile": k % 2}
                                                                  for k in range(6)])),
            "--label", "smile", "-o", w.out("same.pt")], "error"),
        Case("magnitudes", "fit on labels of ±1e300 (finite)", lambda w: [
            "directions", "fit", w.make("huge.jsonl", _listing(w, [
                {"latent": str(w.variant(k)), "smile": (-1) ** k * 1e300} for k in range(4)])),
            "--label", "smile", "-o", w.out("huge.pt")], "ok", verify=lambda w: _unit_direction(w.out("huge.pt"))),
        Case("magnitudes", "paste with a NaN quad", lambda w: [
            "paste", w.img, "--into", w.img, "--transform", w.make("nan.align.json", _quad(float("nan"))),
            "--out", w.out("paste")], "error", lambda w: [w.img]),
        Case("magnitudes", "paste with a collapsed quad", lambda w: [
            "paste", w.img, "--into", w.img, "--transform", w.make("flat.align.json", _quad(5.0)),
            "--out", w.out("paste")], "error", lambda w: [w.img]),
    ]

    # names and files that belong to the user
    c += [
        Case("files kept", "a user's .notes.tmp in --out", lambda w: _with_user_tmp(w), "ok",
             lambda w: [w.out("notes") / ".notes.tmp"]),
        Case("files kept", "input named .scan.tmp inside --out", lambda w: _dot_tmp_input(w), "ok",
             lambda w: [w.out("scan") / ".scan.tmp"]),
        Case("files kept", "input linking into --out (invert)", lambda w: _linked_input(w, "invert"), "ok",
             lambda w: [w.out("linked_invert") / "face.png"]),
        Case("files kept", "input linking into --out (batch)", lambda w: _linked_input(w, "batch"), "ok",
             lambda w: [w.out("linked_batch") / "face.png"]),
        Case("files kept", "lock file planted as a link", lambda w: _planted_lock(w), "error",
             lambda w: [w.path("victim.txt")]),
        Case("files kept", "sefa --preview model.pt", lambda w: [
            "directions", "sefa", "--model", w.model, "--k", "2", "-o", w.out("s.pt"), "--preview", w.model],
            "error", lambda w: [w.model]),
        Case("files kept", "sefa --preview without extension", lambda w: [
            "directions", "sefa", "--model", w.model, "--k", "2", "-o", w.out("s.pt"), "--preview", w.out("prev")],
            "error"),
        Case("files kept", "sefa -o x.png --preview x.png", lambda w: [
            "directions", "sefa", "--model", w.model, "--k", "2", "-o", w.out("x.png"), "--preview", w.out("x.png")],
            "error"),
        Case("files kept", "edit -a 2 after -a -1 -a 1", lambda w: _second_edit(w), "ok",
             lambda w: [w.out("ed_strip") / "a.dir_unit.png"]),
        Case("files kept", "discover -o into a missing folder", lambda w: discover(w, "-o", w.out("nope") / "x.pt"),
             "error"),
        Case("files kept", "model card named as a path", lambda w: _planted_card(w), "ok",
             before=lambda w: _inside(w.out("card")),
             verify=lambda w: _nothing_in(w.path("elsewhere")) or _one_file(w.out("card"), "*.sefa.pt")),
        Case("files kept", "direction named ../../planted", lambda w: ["edit", w.latent, "-d", w.make(
            "dir_planted.pt", _directions_named(w, "../../planted")), "-a", "1", "--out", w.out("deep") / "er"],
            "ok", lambda w: [w.latent], verify=lambda w: _one_file(w.out("deep") / "er", "*planted.png")
            or _nothing_in(w.out("deep"), "*.png")),
    ]
    return c


def _unit_direction(path: Path) -> str:
    """What is wrong with the one direction in a directions file ("" when it is a finite unit vector)."""
    table = torch.load(path, weights_only=True)["directions"]
    vec = next(iter(table.values()))["vector"]
    return "" if torch.isfinite(vec).all() and abs(float(vec.norm()) - 1) < 1e-3 else f"wrote direction {vec[:3]}…"


def _nothing_in(folder: Path, pattern: str = "*") -> str:
    found = sorted(p.name for p in folder.glob(pattern)) if folder.is_dir() else []
    return f"wrote {found[0]} into {folder.name}/" if found else ""


def _one_file(folder: Path, pattern: str) -> str:
    return "" if len(list(folder.glob(pattern))) == 1 else f"no {pattern} in {folder.name}/"


def _directions_named(w: World, name: str) -> Callable[[Path], object]:
    from optinv.io.checkpoints import load_generator
    from optinv.edit.directions import save_directions

    return lambda p: save_directions({name: {"vector": torch.eye(32)[1], "method": "test"}},
                                     load_generator(w.model), p)


def _ganspace(stdev: float) -> Callable[[Path], object]:
    comp = np.eye(32, dtype=np.float32)[:2, None]
    return lambda p: np.savez(p, lat_comp=comp, lat_stdev=np.array([stdev, 1.0], np.float32),
                              lat_mean=np.zeros((1, 32), np.float32))


def _quad(x: float) -> Callable[[Path], object]:
    """A face transform whose quad is NaN (x = nan) or collapsed to the point (x, x)."""
    from optinv.faces.align import TRANSFORM_FORMAT

    quad = [[x, 0.0], [0.0, 32.0], [32.0, 32.0], [32.0, 0.0]] if x != x else [[x, x]] * 4
    return lambda p: p.write_text(json.dumps({"format": TRANSFORM_FORMAT, "quad": quad, "size": 32,
                                              "photo_size": [32, 32]}))


def _with_user_tmp(w: World) -> list:
    out = w.out("notes")
    out.mkdir(parents=True, exist_ok=True)
    (out / ".notes.tmp").write_text("my notes")
    return ["invert", w.img, "--model", w.model, "--steps", "1", "--space", "w", "-q", "--out", out]


def _dot_tmp_input(w: World) -> list:
    out = w.out("scan")
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(32, 32, 3, 7)).save(out / ".scan.tmp", format="PNG")
    return ["invert", out / ".scan.tmp", "--model", w.model, "--steps", "1", "--space", "w", "-q", "--out", out]


def _linked_input(w: World, how: str) -> list:
    out, src = w.out(f"linked_{how}"), w.path(f"linked_in_{how}")
    out.mkdir(parents=True, exist_ok=True)
    src.mkdir(exist_ok=True)
    if not (out / "face.png").exists():
        Image.fromarray(_noise(32, 32, 3, 8)).save(out / "face.png")
    link = src / "face.png"
    if not link.is_symlink():
        link.symlink_to(out / "face.png")
    fast = ["--model", w.model, "--steps", "1", "--space", "w", "-q", "--out", out]
    return ["invert", link, *fast] if how == "invert" else ["batch", src, "--job", "invert", *fast]


def _planted_lock(w: World) -> list:
    out, victim = w.out("planted"), w.path("victim.txt")
    out.mkdir(parents=True, exist_ok=True)
    victim.write_text("precious")
    if not (out / ".optinv.lock").is_symlink():
        (out / ".optinv.lock").symlink_to(victim)
    return ["generate", "--model", w.model, "--seed", "1", "--out", out]


def _second_edit(w: World) -> list:
    out = w.out("ed_strip")
    d = w.make("dir_unit.pt", _torch(torch.eye(32)[0]))
    r = CliRunner().invoke(optinv_main, ["edit", str(w.latent), "-d", str(d), "-a", "-1", "-a", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return ["edit", w.latent, "-d", d, "-a", "2", "--out", out]


def _planted_card(w: World) -> list:
    planted = w.path("elsewhere") / "planted"
    planted.parent.mkdir(exist_ok=True)
    model = w.root / "planted_card.pt"
    if not model.exists():
        save_generator(_tiny(5), model, card={"name": str(planted)})
    return ["directions", "sefa", "--model", model, "--k", "2"]  # the default name comes from the card


@contextlib.contextmanager
def _inside(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(_noise(32, 32, 3)).save(buf, format="PNG")
    return buf.getvalue()


@contextlib.contextmanager
def _locked(out: Path):
    from optinv.io.outputs import OutputLock

    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out):
        yield


def _with_stale_tmp(w: World, args: list) -> list:
    out = Path(args[-1])
    out.mkdir(parents=True, exist_ok=True)
    (out / ".face.png.optinv.tmp").write_bytes(b"half an image")
    return args


# ------------------------------------------------------------------------------ running
def _digest(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def outcome(r) -> str:
    """What the run did, judged from its exit code and what it said."""
    if r.exit_code == 0:
        return "kept" if "kept" in r.stdout and "→" not in r.stdout else "ok"
    if r.exit_code == 1 and "diverged" in (r.stderr or ""):
        return "diverged"
    return "error"


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout


def check(case: Case, w: World, limit: int = 120) -> tuple[str, list[str], str]:
    """Run one case; returns its outcome, the rules it broke (empty: passed) and what it said.
    A case still running after ``limit`` seconds is stopped and counts as broken (``--steps 10**9``
    used to run forever)."""
    import signal

    args = [str(a) for a in case.args(w)]
    inputs = case.inputs(w)
    before = _digest(inputs)
    ctx = case.before(w) if case.before else contextlib.nullcontext()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit)
    try:
        with ctx:
            r = CliRunner().invoke(optinv_main, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    got, problems = outcome(r), []
    stderr = r.stderr or ""
    if isinstance(r.exception, CaseTimeout):
        problems.append(f"still running after {limit} s")
    elif r.exception is not None and not isinstance(r.exception, SystemExit):
        problems.append(f"raised {type(r.exception).__name__}: {str(r.exception)[:150]}")
    if "Traceback" in stderr or "Traceback" in r.stdout:
        problems.append("printed a traceback")
    if got == "error":
        lines = [ln for ln in stderr.splitlines() if ln.startswith(("error:", "Error:"))]
        if len(lines) != 1 and not args[0] == "batch":
            problems.append(f"{len(lines)} error lines")
    if got != case.expect:
        problems.append(f"expected {case.expect}, got {got} (exit {r.exit_code}): {stderr.strip()[:200]}")
    if _digest(inputs) != before:
        problems.append("an input changed")
    wrong = case.verify(w) if case.verify else ""
    if wrong:
        problems.append(wrong)
    leftovers = [p for p in w.root.rglob(".*.optinv.tmp")]
    if leftovers:
        problems.append(f"left {leftovers[0].name}")
        for p in leftovers:
            p.unlink()
    said = next((ln for ln in stderr.splitlines() if ln.startswith(("error:", "Error:", "  note:"))), "")
    return got, problems, said or (r.stdout.strip().splitlines() or [""])[-1]


def run(only: str | None, verbose: bool, limit: int = 120) -> int:
    selected = [c for c in cases() if only is None or c.group == only]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="optinv-hostile-") as tmp:
        w = World(Path(tmp))
        rows: dict[str, Counter] = {}
        failures: list[str] = []
        for case in selected:
            try:
                got, problems, said = check(case, w, limit)
            except Exception as e:  # the case itself could not be set up with this version of optinv
                got, problems, said = "error", [f"could not run: {type(e).__name__}: {str(e)[:120]}"], ""
            rows.setdefault(case.group, Counter())[got] += 1
            rows[case.group]["cases"] += 1
            if problems:
                rows[case.group]["broken"] += 1
                failures.append(f"{case.group} / {case.name}: {'; '.join(problems)}")
            if verbose:
                print(f"{'FAIL' if problems else 'ok  '} {case.group:18s} {case.name:40s} → {got:8s} "
                      f"{said.replace(str(w.root), '…')[:150]}")
    print("| class of input | cases | error (one line) | ok / converted | kept | diverged (marked, exit 1) | rules broken |")
    print("|---|---|---|---|---|---|---|")
    for group, n in rows.items():
        print(f"| {group} | {n['cases']} | {n['error']} | {n['ok']} | {n['kept']} | {n['diverged']} | {n['broken']} |")
    total = sum(n["cases"] for n in rows.values())
    print(f"\n{total} cases in {time.perf_counter() - t0:.0f} s; {len(failures)} broke a rule")
    for f in failures:
        print("  " + f)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="one class of input (e.g. images, numbers, outputs)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--case-timeout", type=int, default=120, help="seconds before a case counts as hanging")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    sys.exit(run(a.only, a.verbose, a.case_timeout))


if __name__ == "__main__":
    main()
