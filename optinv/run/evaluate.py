"""Score any method's outputs against the truth: ``optinv evaluate PRED_DIR TRUTH_DIR``.

Images are paired by file name (stem). Every number comes from :mod:`optinv.engine.metrics` (PSNR,
SSIM, MS-SSIM), the ``lpips`` package (when its backbone is on this machine) and dlib (identity
distance and whether a face is found, with the ``faces`` extra); with ``scale`` K also the
downscale consistency: PSNR between the two images' ×K Keys-bicubic downscales (what PULSE-style
methods promise to keep). A column whose measure is unavailable stays empty and the report
says why. The benchmark scores its own rows with this module.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from optinv.engine import metrics
from optinv.errors import OptinvError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
COLUMNS = ("psnr", "ssim", "ms_ssim", "lpips", "identity_distance", "face_found", "psnr_downscaled")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "lpips": False, "identity_distance": False,
                    "face_found": True, "psnr_downscaled": True}


@dataclass
class Evaluation:
    """Per-image rows (name → {column: value or None}), the mean row, and why columns are empty."""

    rows: dict[str, dict[str, Any]]
    mean: dict[str, float | None]
    missing: dict[str, str] = field(default_factory=dict)
    unpaired: list[str] = field(default_factory=list)
    scale: int | None = None

    def columns(self) -> list[str]:
        return [c for c in COLUMNS if c != "psnr_downscaled" or self.scale]


def pair_files(pred_dir: str | os.PathLike, truth_dir: str | os.PathLike) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(name, prediction, truth) for every stem found in both folders, and the stems found in one only."""
    def images(d: Path) -> dict[str, Path]:
        if not d.is_dir():
            raise OptinvError(f"{d}: no such folder")
        found: dict[str, Path] = {}
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                if p.stem in found:
                    raise OptinvError(f"{d} holds two images named {p.stem} ({found[p.stem].name}, {p.name}): "
                                      f"pairs are made by name")
                found[p.stem] = p
        return found

    pred, truth = images(Path(pred_dir)), images(Path(truth_dir))
    common = sorted(set(pred) & set(truth))
    if not common:
        raise OptinvError(f"no image names in common between {pred_dir} ({len(pred)} images) and {truth_dir} "
                          f"({len(truth)}): pairs are made by file name")
    unpaired = sorted(set(pred) ^ set(truth))
    return [(n, pred[n], truth[n]) for n in common], unpaired


def load01(path: Path) -> torch.Tensor:
    """An image file as [3, H, W] in [0, 1] (alpha dropped: it has no meaning for a score)."""
    from optinv.io.image_files import load_image

    return load_image(path, notes=[])


def _lpips(backbone: str | os.PathLike | None, missing: dict[str, str]):
    from losses.perceptual import LPIPSLoss, LPIPSUnavailable, make_lpips

    try:
        return LPIPSLoss(make_lpips("vgg", backbone)).eval()
    except LPIPSUnavailable as e:
        missing["lpips"] = f"empty: {e}"
    except ImportError as e:
        missing["lpips"] = f"empty: the lpips package is not installed ({e})"
    return None


def _faces(missing: dict[str, str]) -> bool:
    try:
        from optinv.faces import backend
    except ImportError as e:  # pragma: no cover - the module itself imports nothing optional
        missing["identity_distance"] = missing["face_found"] = f"empty: {e}"
        return False
    if backend.available():
        return True
    reason = "empty: dlib and its models are not installed (pip install 'optinv[faces]')"
    missing["identity_distance"] = missing["face_found"] = reason
    return False


def score_pair(pred: torch.Tensor, truth: torch.Tensor, *, scale: int | None = None, lpips=None,
               faces: bool = False) -> dict[str, Any]:
    """Every measure for one pair of [3, H, W] images in [0, 1] (None where unavailable)."""
    from optinv.engine.operators import BicubicDownscale
    from optinv.io.image_files import to_pil

    row: dict[str, Any] = {"psnr": metrics.psnr(pred, truth), "ssim": metrics.ssim(pred, truth),
                           "ms_ssim": metrics.ms_ssim(pred, truth), "lpips": None, "identity_distance": None,
                           "face_found": None}
    if lpips is not None:
        with torch.no_grad():
            row["lpips"] = float(lpips(pred[None], truth[None])[0])
    if faces:
        from optinv.faces import identity

        a, b = to_pil(pred), to_pil(truth)
        row["identity_distance"] = identity.distance(a, b)
        row["face_found"] = int(identity.face_found(a))
    if scale:
        d = BicubicDownscale(scale)
        row["psnr_downscaled"] = metrics.psnr(d(pred[None])[0], d(truth[None])[0])
    return row


def evaluate(pred_dir: str | os.PathLike, truth_dir: str | os.PathLike, scale: int | None = None,
             lpips_backbone: str | os.PathLike | None = None, lpips: bool = True, faces: bool = True) -> Evaluation:
    """Pair the folders by name, check the sizes, and score every pair."""
    pairs, unpaired = pair_files(pred_dir, truth_dir)
    if scale is not None and scale < 1:
        raise OptinvError(f"`scale` must be ≥ 1, got {scale}")
    loaded = []
    for name, p, t in pairs:
        a, b = load01(p), load01(t)
        if a.shape != b.shape:
            raise OptinvError(f"{name}: the prediction is {a.shape[-1]}×{a.shape[-2]} and the truth "
                              f"{b.shape[-1]}×{b.shape[-2]}: compare images of the same size")
        if scale and (a.shape[-1] % scale or a.shape[-2] % scale):
            raise OptinvError(f"{name}: {a.shape[-1]}×{a.shape[-2]} is not divisible by `scale` {scale}")
        loaded.append((name, a, b))
    missing: dict[str, str] = {}
    net = _lpips(lpips_backbone, missing) if lpips else None
    if not lpips:
        missing["lpips"] = "empty: not asked for"
    use_faces = _faces(missing) if faces else False
    if not faces:
        missing.setdefault("identity_distance", "empty: not asked for")
        missing.setdefault("face_found", "empty: not asked for")
    rows = {name: score_pair(a, b, scale=scale, lpips=net, faces=use_faces) for name, a, b in loaded}
    return Evaluation(rows=rows, mean=mean_row(rows), missing=missing, unpaired=unpaired, scale=scale)


def mean_row(rows: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Column means over the images that have a finite value (PSNR of identical images is inf:
    the mean says inf too)."""
    out: dict[str, float | None] = {}
    for c in COLUMNS:
        vals = [r[c] for r in rows.values() if r.get(c) is not None]
        out[c] = sum(vals) / len(vals) if vals else None
    return out


def _fmt(c: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if c in ("psnr", "psnr_downscaled"):
        return f"{v:.2f}"
    if c == "face_found":
        return f"{v:.0%}" if isinstance(v, float) else ("yes" if v else "no")
    return f"{v:.4f}"


def markdown(ev: Evaluation, title: str = "") -> str:
    """The table as Markdown: one row per image, the mean last, a line per empty column."""
    cols = ev.columns()
    head = ["image", *[c + (" ↑" if HIGHER_IS_BETTER[c] else " ↓") for c in cols]]
    lines = ([f"## {title}", ""] if title else []) + ["| " + " | ".join(head) + " |",
                                                      "|" + "---|" * len(head)]
    for name, r in ev.rows.items():
        lines.append("| " + " | ".join([name, *[_fmt(c, r.get(c)) for c in cols]]) + " |")
    lines.append("| **mean** | " + " | ".join(_fmt(c, ev.mean.get(c)) for c in cols) + " |")
    notes = [f"- {c}: {why}" for c, why in ev.missing.items() if c in cols]
    if ev.unpaired:
        notes.append(f"- not paired (in one folder only): {', '.join(ev.unpaired[:10])}"
                     + (" …" if len(ev.unpaired) > 10 else ""))
    if ev.scale:
        notes.append(f"- psnr_downscaled: PSNR of the two images' ×{ev.scale} bicubic downscales")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def csv_text(ev: Evaluation) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = ev.columns()
    w.writerow(["image", *cols])
    for name, r in [*ev.rows.items(), ("mean", ev.mean)]:
        w.writerow([name, *["" if r.get(c) is None else r[c] for c in cols]])
    return buf.getvalue()


def write_report(ev: Evaluation, out: str | os.PathLike, pred_dir: str = "", truth_dir: str = "") -> dict[str, Path]:
    """OUT/evaluation.md, OUT/evaluation.csv and OUT/NAME.json per image (atomic writes)."""
    from optinv.io.fileio import atomic_write_text
    from optinv.io.outputs import jsonable

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "evaluation.md", "csv": out / "evaluation.csv"}
    atomic_write_text(markdown(ev, f"{pred_dir} against {truth_dir}" if pred_dir else ""), paths["markdown"])
    atomic_write_text(csv_text(ev), paths["csv"])
    for name, r in ev.rows.items():
        rec = {"name": name, "prediction_dir": str(pred_dir), "truth_dir": str(truth_dir), "metrics": r,
               "empty": {c: why for c, why in ev.missing.items() if r.get(c) is None}, "scale": ev.scale}
        atomic_write_text(json.dumps(jsonable(rec), indent=2) + "\n", out / f"{name}.json")
    return paths


__all__ = ["Evaluation", "evaluate", "pair_files", "score_pair", "markdown", "csv_text", "write_report", "COLUMNS"]

