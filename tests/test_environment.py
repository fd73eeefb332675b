"""What optinv needs from the machine: LPIPS backbones (download or a clear stop), shipped samples."""

from __future__ import annotations

import time

import pytest

from losses import perceptual


def test_backbone_urls_are_torchvisions():
    import torchvision.models as tvm

    for net, url in perceptual.BACKBONE_URLS.items():
        assert getattr(tvm, perceptual.BACKBONE_WEIGHTS[net]).IMAGENET1K_V1.url == url


def test_offline_lpips_stops_fast_with_the_file_name(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch cache
    monkeypatch.setenv(perceptual.OFFLINE_ENV, "1")
    t0 = time.perf_counter()
    with pytest.raises(perceptual.LPIPSUnavailable) as e:
        perceptual.make_lpips("vgg")
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert "vgg16-397923af.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "lpips_backbone" in msg and "download.pytorch.org" in msg


def test_online_lpips_lets_torchvision_fetch_and_says_so_once(monkeypatch, tmp_path, capsys):
    import lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(perceptual, "can_download", lambda url, seconds=0.8: True)
    monkeypatch.setattr(perceptual, "_announced", set())
    built = []

    class FakeLPIPS:  # stands in for lpips.LPIPS, which would download the backbone here
        def __init__(self, net, pretrained, verbose, **kw):
            built.append((net, pretrained, kw))

        def eval(self):
            return self

        def requires_grad_(self, flag):
            return self

    monkeypatch.setattr(lpips, "LPIPS", FakeLPIPS)
    perceptual.make_lpips("vgg")
    perceptual.make_lpips("vgg")
    assert built == [("vgg", True, {}), ("vgg", True, {})]  # torchvision's own pretrained path
    err = capsys.readouterr().err
    assert err.count("fetching vgg16-397923af.pth") == 1


def test_offline_switch_beats_the_network(monkeypatch):
    monkeypatch.setenv(perceptual.OFFLINE_ENV, "1")
    assert perceptual.can_download("https://download.pytorch.org/models/x.pth") is False


def test_samples_are_found_outside_the_checkout(tmp_path):
    from optinv.io.checkpoints import samples_dir

    installed = tmp_path / "prefix" / "share" / "optinv" / "samples" / "models"
    installed.mkdir(parents=True)
    assert samples_dir(tmp_path / "no-checkout" / "samples", [str(tmp_path / "prefix")]) == installed.parent
    checkout = tmp_path / "src" / "samples"
    (checkout / "models").mkdir(parents=True)
    assert samples_dir(checkout, [str(tmp_path / "prefix")]) == checkout  # a checkout wins
