"""Checkpoint formats: round trips, model cards, refusals with clear messages."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from conftest import fixture_path, tiny_generator
from optinv.io.checkpoints import load_generator, save_generator, save_rosinality
from optinv.errors import CheckpointError
from optinv.world.nvidia_writer import write_nvidia_style_pickle


def images_of(g, seed: int = 0) -> torch.Tensor:
    z = torch.randn(3, g.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return g(z, truncation=0.7, truncation_latent=g.w_avg)


def test_round_trip_native_rosinality_nvidia(tmp_path: Path) -> None:
    g = tiny_generator(32, style_dim=32, seed=9)
    ref = images_of(g)
    native = save_generator(g, tmp_path / "a.pt", card={"name": "tiny"})
    g1 = load_generator(native)
    assert torch.equal(images_of(g1), ref)
    assert g1.card["name"] == "tiny" and g1.card["resolution"] == 32 and g1.card["n_latent"] == 8

    ros = save_rosinality(g1, tmp_path / "b.pt")
    g2 = load_generator(ros)
    assert g2.card["source_format"] == "rosinality"
    assert torch.equal(g2.w_avg, g.w_avg)
    assert torch.equal(images_of(g2), ref)

    config = {**g2.config(), "w_avg": g2.w_avg}
    config["channels"] = {int(k): v for k, v in config["channels"].items()}
    write_nvidia_style_pickle(g2.state_dict(), config, tmp_path / "c.pkl")
    g3 = load_generator(tmp_path / "c.pkl")
    assert g3.card["source_format"] == "nvidia-stylegan2-ada"
    assert torch.equal(images_of(g3), ref)

    back = load_generator(save_generator(g3, tmp_path / "d.pt"))
    assert torch.equal(images_of(back), ref)


def test_half_precision_export_is_close(tmp_path: Path) -> None:
    g = tiny_generator(32, style_dim=32, seed=3)
    h = load_generator(save_generator(g, tmp_path / "h.pt", half=True))
    assert (images_of(h) - images_of(g)).abs().max() < 2e-2
    assert (tmp_path / "h.pt").stat().st_size < 0.6 * save_generator(g, tmp_path / "f.pt").stat().st_size


def test_nvidia_fixture_converts_to_optinv_format(tmp_path: Path) -> None:
    src = fixture_path("nvidia_ada_small64.pkl")
    g = load_generator(src)
    dst = save_generator(g, tmp_path / "nv.pt")
    assert torch.equal(images_of(load_generator(dst)), images_of(g))


def test_malicious_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Payload()}))
    with pytest.raises(CheckpointError, match="posix.system|os.system"):
        load_generator(path)
    torch_path = tmp_path / "evil.pt"
    torch.save({"g_ema": Payload()}, torch_path)  # torch's zip format with a payload
    with pytest.raises(CheckpointError, match="cannot read"):
        load_generator(torch_path)
    assert not marker.exists()


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"hello, I am text", "not a model file"),
    (b"PK\x03\x04garbage", "not a model file|cannot read"),
])
def test_bad_files_are_refused_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_generator(p)
    assert str(p) in str(info.value)


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    g = tiny_generator(16, style_dim=16)
    full = save_generator(g, tmp_path / "full.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_generator(cut)


def test_weights_with_nan_are_refused(tmp_path: Path) -> None:
    g = tiny_generator(16, style_dim=16)
    with torch.no_grad():
        g.conv1.conv.weight[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        load_generator(save_generator(g, tmp_path / "nan.pt"))


def test_rosinality_config_is_inferred_from_shapes() -> None:
    g = load_generator(fixture_path("rosinality_small64.pt"))
    assert (g.size, g.style_dim, g.n_mlp) == (64, 128, 8)
    assert g.channels == {4: 96, 8: 64, 16: 48, 32: 32, 64: 16}


def test_missing_model_lists_what_exists() -> None:
    with pytest.raises(CheckpointError, match="model not found"):
        load_generator("definitely_not_a_model")
