"""Tests of the procedural portrait renderer (the project's training data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optinv.world import synthfaces as sf  # noqa: E402


def test_same_seed_is_byte_identical() -> None:
    a, la = sf.render(7)
    b, lb = sf.render(7)
    assert a.tobytes() == b.tobytes()
    assert la == lb


def test_different_seeds_differ() -> None:
    imgs = [np.asarray(sf.render(s)[0]) for s in range(6)]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i].astype(int) - imgs[j].astype(int)).mean() > 2.0


def test_params_from_seed_matches_uniform() -> None:
    u = np.random.default_rng(3).random(sf.N_PARAMS)
    assert sf.params_from_seed(3) == sf.params_from_uniform(u)
    assert sf.params_from_uniform(u) == sf.params_from_uniform(u.copy())


def test_params_from_uniform_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        sf.params_from_uniform(np.zeros(sf.N_PARAMS + 1))


@pytest.mark.parametrize("seed", range(12))
def test_labels_valid_and_json(seed: int) -> None:
    img, lab = sf.render(seed, 32)
    assert img.mode == "RGB" and img.size == (32, 32)
    assert json.loads(json.dumps(lab)) == lab
    assert lab["seed"] == seed
    assert 0.0 <= lab["skin_tone"] <= 1.0
    assert 0.0 <= lab["hair_length"] <= 1.0
    assert -1.0 <= lab["smile"] <= 1.0
    assert isinstance(lab["hair_dyed"], bool)
    assert isinstance(lab["bangs"], bool)
    assert isinstance(lab["glasses"], bool)
    natural = {"black", "dark_brown", "brown", "auburn", "blonde", "grey"}
    dyed = {"blue", "pink", "green", "purple"}
    assert lab["hair_color"] in (dyed if lab["hair_dyed"] else natural)
    assert lab["eye_color"] in {"brown", "blue", "green", "grey", "hazel"}
    for key in ("hair_rgb", "background"):
        assert len(lab[key]) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in lab[key])
    pose = lab["pose"]
    assert abs(pose["dx"]) <= 0.06 and abs(pose["dy"]) <= 0.06
    assert 0.9 <= pose["scale"] <= 1.1 and abs(pose["tilt_deg"]) <= 12.0
    assert -180.0 <= lab["light"] <= 180.0


def test_discrete_attribute_rates_are_plausible() -> None:
    labs = [sf.labels_from_params(sf.params_from_seed(s)) for s in range(400)]
    rate = lambda k: np.mean([lab[k] for lab in labs])  # noqa: E731
    assert 0.08 < rate("hair_dyed") < 0.24
    assert 0.17 < rate("glasses") < 0.34
    assert 0.3 < rate("bangs") < 0.5
    assert {lab["hair_color"] for lab in labs} >= {"black", "brown", "blonde", "auburn", "grey", "blue", "pink"}
    assert len({lab["eye_color"] for lab in labs}) == 5


@pytest.mark.parametrize("size", [32, 64, 128])
def test_masks_shapes_and_cover(size: int) -> None:
    img, lab, masks = sf.render(11, size, return_masks=True)
    assert np.asarray(img).shape == (size, size, 3)
    for name in ("hair", "skin", "background", "eyes", "mouth", "glasses"):
        m = masks[name]
        assert m.shape == (size, size) and m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() <= 1.0
    total = sum(masks.values())
    np.testing.assert_allclose(total, 1.0, atol=1e-4)
    assert masks["hair"].sum() > 0.02 * size * size
    assert masks["skin"].sum() > 0.05 * size * size
    assert masks["eyes"].sum() > 0 and masks["mouth"].sum() > 0
    assert masks["background"][0, 0] > 0.5  # the corner is background


def test_glasses_mask_follows_label() -> None:
    for seed in range(40):
        p = sf.params_from_seed(seed)
        _, masks = sf.render_params(p, 32, return_masks=True)
        assert (masks["glasses"].sum() > 1.0) == p["glasses"]


def test_every_coordinate_changes_the_image() -> None:
    """Each u entry is visual: moving it from 0.2 to 0.8 must change the picture."""
    dead = []
    for i, name in enumerate(sf.PARAM_NAMES):
        u = np.full(sf.N_PARAMS, 0.5)
        u[i] = 0.2
        a = sf.render_params(sf.params_from_uniform(u), 64)
        u[i] = 0.8
        b = sf.render_params(sf.params_from_uniform(u), 64)
        if np.array_equal(a, b):
            dead.append(name)
    assert not dead, f"coordinates with no visual effect: {dead}"
    assert len(sf.PARAM_NAMES) == sf.N_PARAMS


def test_small_steps_change_the_image_little() -> None:
    """Continuity: a tiny move of a continuous coordinate is a small image change."""
    u = np.random.default_rng(0).random(sf.N_PARAMS)
    u[sf.PARAM_NAMES.index("glasses")] = 0.6  # stay away from the discrete thresholds
    u[sf.PARAM_NAMES.index("hair_dye")] = 0.6
    u[sf.PARAM_NAMES.index("bangs")] = 0.7
    a = sf.render_params(sf.params_from_uniform(u), 64).astype(int)
    b = sf.render_params(sf.params_from_uniform(np.clip(u + 0.01, 0, 1)), 64).astype(int)
    assert np.abs(a - b).mean() < 3.0


@pytest.mark.parametrize("size", [32, 64, 128])
def test_sizes_render(size: int) -> None:
    arr = sf.render_params(sf.params_from_seed(2), size)
    assert arr.shape == (size, size, 3) and arr.dtype == np.uint8
    assert arr.std() > 10  # not a flat picture
