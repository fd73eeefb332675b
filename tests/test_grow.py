"""Growing a trained generator: the new blocks start as the upsampled image; training resumes it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import ROOT, tiny_generator
from optinv.io.checkpoints import load_generator, save_generator
from optinv.engine.generator import Upsample
from optinv.world import synthfaces
from optinv.world.grow import grow_generator
from optinv.world.teacher import render_teacher, teacher_supersample, teacher_uniform

sys.path.insert(0, str(ROOT / "scripts"))
import train_generator  # noqa: E402


def test_grown_generator_starts_as_the_upsampled_small_image() -> None:
    small = tiny_generator(16)
    big = grow_generator(small, 64, {**small.channels, 32: 8, 64: 8})
    assert big.size == 64 and big.n_latent == 10 and torch.equal(big.w_avg, small.w_avg)
    z = torch.randn(3, small.style_dim, generator=torch.Generator().manual_seed(1))
    up = Upsample()
    with torch.no_grad():
        expected = up(up(small(z)))
        got = big(z)
    assert got.shape == (3, 3, 64, 64)
    assert torch.allclose(got, expected, atol=1e-5)
    # the kept layers are the small model's, bit for bit
    for k, v in small.state_dict().items():
        assert torch.equal(big.state_dict()[k], v), k


def test_new_blocks_can_start_blind_to_non_renderer_dimensions() -> None:
    small = tiny_generator(16, style_dim=48)
    big = grow_generator(small, 32, {**small.channels, 32: 8}, n_relevant=10)
    new = [m.conv.modulation.weight for m in list(big.convs)[-2:]]
    assert all(w[:, 10:].abs().max() == 0 and w[:, :10].abs().max() > 0 for w in new)
    old = small.convs[0].conv.modulation.weight
    assert torch.equal(big.convs[0].conv.modulation.weight, old)  # trained layers untouched


def test_growing_refuses_other_widths_and_smaller_sizes() -> None:
    small = tiny_generator(16)
    with pytest.raises(ValueError, match="channels at 16"):
        grow_generator(small, 32, {**small.channels, 16: small.channels[16] + 1, 32: 8})
    with pytest.raises(ValueError, match="larger size"):
        grow_generator(small, 16, small.channels)


def test_training_from_a_smaller_exported_model_grows_it(tmp_path: Path) -> None:
    small = tiny_generator(16, style_dim=48)
    src = save_generator(small, tmp_path / "small.pt")
    out = tmp_path / "run"
    train_generator.main([str(out), "--init", str(src), "--size", "32", "--channels", ",".join(
        str(c) for c in (*small.channels.values(), 8)), "--style-dim", "48", "--n-mlp", "2", "--batch", "2",
        "--workers", "0", "--kimg", "1", "--max-steps", "1", "--lr", "0", "--sample-every", "1000"])
    weights = torch.load(out / "latest.pt", weights_only=True)["g_ema"]
    assert weights["to_rgbs.2.conv.weight"].abs().max() == 0  # the new toRGB at zero (lr 0 keeps it)
    loaded = load_generator(src)
    for k, v in loaded.state_dict().items():
        assert torch.equal(weights[k], v), k


def test_teacher_supersampling_keeps_64_and_halves_the_canvas_at_256() -> None:
    assert [teacher_supersample(s) for s in (16, 64, 128, 256, 1024)] == [4, 4, 4, 2, 2]
    z = torch.randn(1, 64, generator=torch.Generator().manual_seed(3))
    params = synthfaces.params_from_uniform(teacher_uniform(z)[0])
    expected = torch.from_numpy(synthfaces.render_params(params, 64, 4)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(render_teacher(z, 64)[0], expected)


def test_data_workers_render_each_step_once_in_order() -> None:
    """Two workers give the batches of one, in the same order (exact resume, no duplicates)."""
    def batches(workers: int) -> list[torch.Tensor]:
        stream = train_generator.TeacherStream(seed=0, start_step=5, batch=2, style_dim=48, size=16)
        loader = DataLoader(stream, batch_size=None, num_workers=workers)
        it = iter(loader)
        return [next(it)[0] for _ in range(4)]

    one, two = batches(0), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    assert len({tuple(b.flatten()[:4].tolist()) for b in two}) == 4
