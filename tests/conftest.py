"""Shared fixtures: paths to the reference fixtures and small generators made on the spot."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT.parent / "shared" / "fixtures"
os.environ["OPTINV_OFFLINE"] = "1"  # tests never download (LPIPS backbones would otherwise be fetched when online)

from optinv.engine.generator import Generator  # noqa: E402


def load_script(name: str):
    """A module of scripts/ (not a package) by file name, for tests of the benchmark scripts."""
    import importlib.util

    if str(ROOT / "scripts") not in sys.path:  # scripts import their siblings, as `python scripts/x.py` lets them
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


def fixture_path(name: str) -> Path:
    """A reference fixture, or skip the test where ../shared/fixtures is absent (user clones)."""
    p = FIXTURES / name
    if not p.exists():
        pytest.skip(f"reference fixture {name} not present ({FIXTURES})")
    return p


def tiny_generator(size: int = 32, style_dim: int = 32, seed: int = 0, n_mlp: int = 2) -> Generator:
    torch.manual_seed(seed)
    chans = {2 ** k: max(8, 64 >> max(0, k - 3)) for k in range(2, size.bit_length())}
    g = Generator(size, style_dim, n_mlp, channels=chans)
    with torch.no_grad():  # non-zero noise strengths and biases so every path is exercised
        for name, p in g.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("to_rgb1.bias"):
                p.normal_(0, 0.1)
        g.w_avg.copy_(g.mean_latent(500))
    return g.eval().requires_grad_(False)


@pytest.fixture
def tiny32() -> Generator:
    return tiny_generator(32)
