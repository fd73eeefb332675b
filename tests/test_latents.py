"""The latent file: every space round-trips exactly, and every kind of bad file gets one clear error."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_generator
from optinv.io import latents
from optinv.errors import OptinvError
from optinv.engine.spaces import make_space

G = tiny_generator(32)


def _record(space: str) -> latents.LatentRecord:
    gen = torch.Generator().manual_seed(1)
    wplus = G.w_avg + 0.3 * torch.randn(1, G.n_latent, G.style_dim, generator=gen)
    sp = make_space(space, G, wplus, map_sizes=[2] * G.n_latent if space == "stylemap" else None)
    noise = [n.clone() for n in G.noise_list()]
    return latents.record_from_space(G, sp, sp.state(), noise, 0, recipe="1*L2", settings={"steps": 3},
                                     space_options={"tile": False, "mapping": getattr(sp, "mapping_mode", None)})


@pytest.mark.parametrize("space", ["w", "wplus", "zplus", "stylemap"])
def test_every_space_round_trips_and_rerenders_bit_exactly(space: str, tmp_path) -> None:
    rec = _record(space)
    path = latents.save_latent(rec, tmp_path / "x.latent.pt")
    back = latents.load_latent(path, G)
    assert back["space"] == space and back["model"]["id"] == latents.model_id(G)
    assert set(back["tensors"]) == set(rec["tensors"])
    assert all(torch.equal(back["tensors"][k], rec["tensors"][k]) for k in rec["tensors"])
    assert torch.equal(latents.render_latent(G, back), latents.render_latent(G, rec))
    assert back["wplus"].shape == (G.n_latent, G.style_dim)


def test_codes_of_an_edited_record_are_the_edit() -> None:
    rec = _record("stylemap")
    _, maps, noise = latents.codes(rec)
    moved = [m + 1 for m in maps]
    edited = latents.record_from_codes(rec, noise, maps=moved)
    assert edited["space"] == "stylemap" and edited["model"] == rec["model"]
    assert all(torch.equal(edited["tensors"][f"maps.{i}"][0], m) for i, m in enumerate(moved))
    assert torch.allclose(edited["wplus"], rec["wplus"] + 1, atol=1e-5)


def _corrupt(rec: latents.LatentRecord, how: str) -> latents.LatentRecord:
    if how == "missing key":
        del rec["noise"]
    elif how == "missing tensor":
        rec["tensors"] = {"w": rec["tensors"]["wplus"][:, 0]}
    elif how == "wrong shape":
        rec["tensors"]["wplus"] = rec["tensors"]["wplus"][:, :3]
    elif how == "wrong dtype":
        rec["tensors"]["wplus"] = rec["tensors"]["wplus"].long()
    elif how == "not finite":
        rec["tensors"]["wplus"][0, 0, 0] = float("nan")
    elif how == "bad noise":
        rec["noise"][0] = rec["noise"][0][0]
    elif how == "unknown space":
        rec["space"] = "s+"
    return rec


@pytest.mark.parametrize("how, message", [
    ("missing key", "lacks key.*noise"), ("missing tensor", "lacks tensor.*wplus"),
    ("wrong shape", "shape .*does not fit"), ("wrong dtype", "dtype torch.int64"), ("not finite", "NaN"),
    ("bad noise", "noise map 0"), ("unknown space", "unknown space 's\\+'"),
])
def test_bad_records_are_refused_in_one_line(how: str, message: str, tmp_path) -> None:
    path = tmp_path / "bad.latent.pt"
    torch.save(_corrupt(_record("wplus"), how), path)
    with pytest.raises(OptinvError, match=message) as info:
        latents.load_latent(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_and_foreign_files_are_refused(tmp_path) -> None:
    good = latents.save_latent(_record("w"), tmp_path / "good.latent.pt")
    cut = tmp_path / "cut.latent.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(OptinvError, match="not a readable latent file"):
        latents.load_latent(cut)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(OptinvError, match="not an optinv latent file"):
        latents.load_latent(other)


def test_a_latent_of_another_model_is_refused() -> None:
    rec = _record("wplus")
    other = tiny_generator(32, seed=1)
    with pytest.raises(OptinvError, match="made with model"):
        latents.check_model(rec, other)
    smaller = tiny_generator(16)
    with pytest.raises(OptinvError, match="layers"):
        latents.fits(rec, smaller)
