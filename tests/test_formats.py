"""Other projects' files: NVIDIA projected_w.npz, rosinality projector .pt, InterfaceGAN, GANSpace, SeFa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optinv.edit import direction_formats as DF
from optinv.io import latent_formats as LF
from optinv.edit.directions import load_direction
from optinv.errors import OptinvError
from optinv.io.latents import from_foreign, model_ref, new_record, render_latent, validate


def _read(spec, g):
    return validate(from_foreign(LF.read_foreign(spec, g), g), g)


def _record(g, space="wplus", seed=0):
    gen = torch.Generator().manual_seed(seed)
    wplus = g.w_avg + 0.5 * torch.randn(g.n_latent, g.style_dim, generator=gen)
    noise = [n.clone().reshape(1, 1, *n.shape[-2:]) for n in g.noise_list()]
    if space == "w":
        w = wplus[:1]
        return new_record("w", {"w": w.clone()}, noise, model_ref(g), w.expand(g.n_latent, -1).clone())
    return new_record("wplus", {"wplus": wplus[None].clone()}, noise, model_ref(g), wplus)


def test_nvidia_npz_round_trip(tiny32, tmp_path):
    rec = _record(tiny32)
    path = LF.write_foreign(rec, tmp_path / "projected_w.npz", "npz")
    with np.load(path, allow_pickle=False) as z:  # what stylegan2-ada-pytorch's generate.py reads
        assert z.files == ["w"]
        assert z["w"].shape == (1, tiny32.n_latent, tiny32.style_dim) and z["w"].dtype == np.float32
    back = _read(path, tiny32)
    assert back["space"] == "wplus"
    assert torch.equal(back["wplus"], rec["wplus"])
    assert torch.equal(render_latent(tiny32, back), render_latent(tiny32, rec))  # same code, model's noise


def test_nvidia_npz_refuses_bad_files(tiny32, tmp_path):
    np.savez(tmp_path / "other.npz", z=np.zeros((1, 512), np.float32))
    with pytest.raises(OptinvError, match="no array 'w'"):
        LF.read_foreign(tmp_path / "other.npz", tiny32)
    np.savez(tmp_path / "wide.npz", w=np.zeros((1, tiny32.n_latent, 512), np.float32))
    with pytest.raises(OptinvError, match="512"):
        LF.read_foreign(tmp_path / "wide.npz", tiny32)
    np.savez(tmp_path / "obj.npz", w=np.array([{"a": 1}], dtype=object))  # needs pickle to read: refused
    with pytest.raises(OptinvError, match="not a readable .npz"):
        LF.read_foreign(tmp_path / "obj.npz", tiny32)


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_rosinality_round_trip(tiny32, tmp_path, space):
    rec = _record(tiny32, space, seed=1)
    rec["noise"] = [torch.randn_like(n) for n in rec["noise"]]
    image = render_latent(tiny32, rec)[0]
    path = LF.write_foreign(rec, tmp_path / "proj.pt", "rosinality", key="face.png", image=image)
    raw = torch.load(path, weights_only=True)  # the projector's layout
    assert list(raw) == ["face.png"] and set(raw["face.png"]) == {"img", "latent", "noise"}
    assert raw["face.png"]["latent"].shape == ((tiny32.style_dim,) if space == "w" else (tiny32.n_latent, tiny32.style_dim))
    assert torch.allclose(raw["face.png"]["img"], image * 2 - 1)
    back = _read(path, tiny32)
    assert back["space"] == space
    assert torch.equal(back["wplus"], rec["wplus"])
    assert all(torch.equal(a, b) for a, b in zip(back["noise"], rec["noise"]))
    assert torch.equal(render_latent(tiny32, back), render_latent(tiny32, rec))


def test_rosinality_several_entries_need_a_key(tiny32, tmp_path):
    a, b = _record(tiny32, seed=2), _record(tiny32, seed=3)
    entries = {n: {"latent": r["wplus"], "noise": r["noise"]} for n, r in (("a.png", a), ("b.png", b))}
    torch.save(entries, tmp_path / "two.pt")
    with pytest.raises(OptinvError, match="2 projections.*:IMAGE"):
        LF.read_foreign(tmp_path / "two.pt", tiny32)
    picked = _read(f"{tmp_path / 'two.pt'}:b.png", tiny32)
    assert torch.equal(picked["wplus"], b["wplus"])


def test_sniff_tells_formats_apart(tiny32, tmp_path):
    from optinv.io.latents import save_latent

    rec = _record(tiny32)
    assert LF.sniff(save_latent(rec, tmp_path / "x.latent.pt")) == "optinv"
    assert LF.sniff(LF.write_foreign(rec, tmp_path / "x.pt", "rosinality", key="x")) == "rosinality"
    assert LF.sniff(LF.write_foreign(rec, tmp_path / "x.npz", "npz")) == "npz"
    torch.save({"g_ema": {}}, tmp_path / "model.pt")
    with pytest.raises(OptinvError, match="not a latent file"):
        LF.sniff(tmp_path / "model.pt")


def test_interfacegan_round_trip(tiny32, tmp_path):
    v = torch.randn(tiny32.style_dim, generator=torch.Generator().manual_seed(4))
    path = DF.write_interfacegan(v, tmp_path / "smile_boundary.npy")
    arr = np.load(path, allow_pickle=False)
    assert arr.shape == (1, tiny32.style_dim) and arr.dtype == np.float32
    assert abs(float(np.linalg.norm(arr)) - 1) < 1e-5
    name, vec = load_direction(str(path), tiny32)
    assert name == "smile_boundary"
    assert torch.allclose(vec, v / v.norm(), atol=1e-6)


def test_ganspace_round_trip(tiny32, tmp_path):
    gen = torch.Generator().manual_seed(5)
    comp = torch.linalg.qr(torch.randn(tiny32.style_dim, 3, generator=gen))[0].T  # 3 orthonormal rows
    std = torch.tensor([3.0, 2.0, 0.5])
    path = DF.write_ganspace(comp, std, tiny32.w_avg, tmp_path / "ganspace.npz")
    with np.load(path, allow_pickle=False) as z:
        assert z["lat_comp"].shape == (3, 1, tiny32.style_dim) and z["lat_stdev"].shape == (3,)
        assert z["lat_mean"].shape == (1, tiny32.style_dim)
    table = DF.read_ganspace(path)
    assert list(table) == ["pc0", "pc1", "pc2"]
    name, vec = load_direction(f"{path}:pc1", tiny32)
    assert name == "pc1" and torch.allclose(vec, comp[1] * 2.0, atol=1e-6)  # alpha 1 = one standard deviation
    with pytest.raises(OptinvError, match="several directions"):
        load_direction(str(path), tiny32)


def test_sefa_is_the_eigenbasis_of_the_modulation_weights(tiny32):
    vecs, vals = DF.sefa(tiny32, k=5)
    assert vecs.shape == (5, tiny32.style_dim)
    assert torch.allclose(vecs @ vecs.T, torch.eye(5), atol=1e-5)
    assert torch.all(vals[:-1] >= vals[1:])
    a = torch.cat([w for _, w in DF.modulation_weights(tiny32)]).double()
    a = a / a.norm(dim=1, keepdim=True)
    for v, lam in zip(vecs.double(), vals.double()):
        assert torch.allclose(a.T @ (a @ v), lam * v, rtol=1e-4, atol=1e-6)
    rand = torch.nn.functional.normalize(torch.randn(200, tiny32.style_dim, dtype=torch.float64), dim=1)
    assert float((rand @ a.T).pow(2).sum(1).max()) <= float(vals[0]) + 1e-6  # no direction moves styles more


def test_sefa_layers_and_labels(tiny32):
    only0 = DF.modulation_weights(tiny32, [0])
    assert [layer for layer, _ in only0] == [0]
    vecs, _ = DF.sefa(tiny32, k=2)
    named = {"smile": -(vecs[0] + 0.1 * vecs[1]), "unrelated": vecs[1] * 0 + torch.ones(tiny32.style_dim) * 1e-3}
    table = DF.sefa_directions(tiny32, k=2, named=named, min_cos=0.5)
    first = next(iter(table))
    assert first == "sefa0_smile" and table[first]["cosine"] > 0.9
    assert float(table[first]["vector"] @ named["smile"]) > 0  # sign follows the label
    with pytest.raises(OptinvError, match="no modulated conv"):
        DF.modulation_weights(tiny32, [99])


def test_open_latent_reads_every_format(tiny32, tmp_path):
    from optinv.io.checkpoints import save_generator
    from optinv.io.latents import open_latent, save_latent

    model = save_generator(tiny32, tmp_path / "tiny.pt")
    rec = _record(tiny32)
    rec["model"]["source_file"] = str(model)
    own = save_latent(rec, tmp_path / "a.latent.pt")
    npz = LF.write_foreign(rec, tmp_path / "a.npz", "npz")
    ros = LF.write_foreign(rec, tmp_path / "a.pt", "rosinality", key="a.png")
    for spec in (own, npz, ros, f"{ros}:a.png"):
        back, g = open_latent(spec, model=str(model))
        assert g.size == tiny32.size and torch.equal(back["wplus"], rec["wplus"])
        assert torch.equal(render_latent(g, back), render_latent(tiny32, rec))
    with pytest.raises(OptinvError, match="no such file"):
        open_latent(tmp_path / "missing.npz")
