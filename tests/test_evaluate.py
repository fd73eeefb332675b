"""optinv evaluate: pairs by name, the metrics of optinv.engine.metrics, empty columns say why."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from optinv.engine import metrics
from optinv.cli import main
from optinv.errors import OptinvError
from optinv.run.evaluate import evaluate, load01, markdown


def _save(t: torch.Tensor, path) -> None:
    Image.fromarray((t.clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy()).save(path)


@pytest.fixture
def folders(tmp_path):
    torch.manual_seed(0)
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    for k in range(2):
        t = torch.rand(3, 32, 32)
        _save(t, truth / f"img{k}.png")
        _save(t + 0.05 * (k + 1) * torch.randn_like(t), pred / f"img{k}.png")
    _save(torch.rand(3, 32, 32), pred / "only_here.png")
    return pred, truth


def test_scores_are_the_metrics_modules_and_pairs_go_by_name(folders) -> None:
    pred, truth = folders
    ev = evaluate(pred, truth, scale=4, faces=False)
    assert set(ev.rows) == {"img0", "img1"} and ev.unpaired == ["only_here"]
    a, b = load01(pred / "img0.png"), load01(truth / "img0.png")
    r = ev.rows["img0"]
    assert r["psnr"] == pytest.approx(metrics.psnr(a, b))
    assert r["ssim"] == pytest.approx(metrics.ssim(a, b))
    assert r["ms_ssim"] == pytest.approx(metrics.ms_ssim(a, b))
    assert ev.rows["img0"]["psnr"] > ev.rows["img1"]["psnr"]  # less noise scores higher
    assert r["psnr_downscaled"] > r["psnr"]  # downscaling averages the noise away
    assert ev.mean["psnr"] == pytest.approx((ev.rows["img0"]["psnr"] + ev.rows["img1"]["psnr"]) / 2)
    assert r["lpips"] is None and "lpips" in ev.missing  # tests run offline: no backbone
    assert "lpips" in markdown(ev) and "only_here" in markdown(ev)


def test_size_mismatch_is_refused(folders) -> None:
    pred, truth = folders
    _save(torch.rand(3, 16, 16), pred / "img0.png")
    with pytest.raises(OptinvError, match="same size"):
        evaluate(pred, truth, faces=False)


def test_no_common_names_is_refused(tmp_path, folders) -> None:
    pred, _ = folders
    other = tmp_path / "other"
    other.mkdir()
    _save(torch.rand(3, 32, 32), other / "zzz.png")
    with pytest.raises(OptinvError, match="no image names in common"):
        evaluate(pred, other, faces=False)


def test_cli_writes_markdown_csv_and_json(tmp_path, folders) -> None:
    pred, truth = folders
    out = tmp_path / "ev"
    run = CliRunner().invoke(main, ["evaluate", str(pred), str(truth), "--scale", "4", "--no-faces", "-o", str(out)])
    assert run.exit_code == 0, run.output
    rows = list(csv.DictReader((out / "evaluation.csv").open()))
    assert [r["image"] for r in rows] == ["img0", "img1", "mean"]
    assert rows[0]["lpips"] == "" and float(rows[0]["psnr_downscaled"]) > 0
    rec = json.loads((out / "img1.json").read_text())
    assert "--lpips-backbone" in rec["empty"]["lpips"] or "lpips" in rec["empty"]["lpips"]
    assert "| **mean** |" in (out / "evaluation.md").read_text()
    bad = CliRunner().invoke(main, ["evaluate", str(pred), str(truth), "-o", str(pred)])
    assert bad.exit_code == 1 and "input folder" in bad.output
