"""NVIDIA pickles: read without running their code, convert to the rosinality layout, round-trip."""

from __future__ import annotations

import io
import math
import os
import pickle
import secrets
import sys
import tempfile
import types
import warnings
from pathlib import Path

import pytest
import torch

from optinv.io.nvidia_convert import nvidia_generator_to_rosinality
from optinv.io.nvidia_unpickler import (NvidiaConversionError, NvidiaPickleFormatError, PersistentModule,
                                        SafeNvidiaUnpickler, UnsafePickleError, module_state_dict, read_nvidia_pickle)
from optinv.world.nvidia_writer import write_nvidia_style_pickle

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
NVIDIA_GLOBALS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"), ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch.storage", "_load_from_bytes"),
}


def fixture(name: str) -> Path:
    p = FIXTURES / name
    if not p.exists():
        pytest.skip(f"reference fixture {name} not present")
    return p


def rosinality_shapes(size: int, style_dim: int, n_mlp: int, channels: dict[int, int]) -> dict[str, tuple]:
    """The rosinality Generator state-dict layout, written out from its definition."""
    L, D = int(math.log2(size)), style_dim
    s: dict[str, tuple] = {}
    for i in range(1, n_mlp + 1):
        s[f"style.{i}.weight"], s[f"style.{i}.bias"] = (D, D), (D,)
    s["input.input"] = (1, channels[4], 4, 4)

    def conv(p: str, cin: int, cout: int, up: bool) -> None:
        s.update({f"{p}.conv.weight": (1, cout, cin, 3, 3), f"{p}.conv.modulation.weight": (cin, D),
                  f"{p}.conv.modulation.bias": (cin,), f"{p}.noise.weight": (1,), f"{p}.activate.bias": (cout,)})
        if up:
            s[f"{p}.conv.blur.kernel"] = (4, 4)

    def rgb(p: str, cin: int, up: bool) -> None:
        s.update({f"{p}.bias": (1, 3, 1, 1), f"{p}.conv.weight": (1, 3, cin, 1, 1),
                  f"{p}.conv.modulation.weight": (cin, D), f"{p}.conv.modulation.bias": (cin,)})
        if up:
            s[f"{p}.upsample.kernel"] = (4, 4)

    conv("conv1", channels[4], channels[4], False)
    rgb("to_rgb1", channels[4], False)
    for k in range(L - 2):
        cin, cout = channels[2 ** (k + 2)], channels[2 ** (k + 3)]
        conv(f"convs.{2 * k}", cin, cout, True)
        conv(f"convs.{2 * k + 1}", cout, cout, False)
        rgb(f"to_rgbs.{k}", cout, True)
    for j in range(2 * L - 3):
        r = 2 ** ((j + 5) // 2)
        s[f"noises.noise_{j}"] = (1, 1, r, r)
    return s


def standard_kernel() -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k, k)
    return k / k.sum() * 4


def random_rosinality(size: int = 16, style_dim: int = 8, n_mlp: int = 2) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    channels = {4: 8, 8: 6, 16: 4, 32: 4}
    channels = {r: c for r, c in channels.items() if r <= size}
    sd = {k: (standard_kernel() if k.endswith("kernel") else torch.randn(shape, generator=g))
          for k, shape in rosinality_shapes(size, style_dim, n_mlp, channels).items()}
    return sd, {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "lr_mlp": 0.01,
                "channels": channels, "w_avg": torch.randn(style_dim, generator=g)}


@pytest.fixture
def synthetic_pickle(tmp_path: Path) -> Path:
    sd, cfg = random_rosinality()
    return write_nvidia_style_pickle(sd, cfg, tmp_path / "synthetic.pkl")


# ------------------------------------------------------------------------ real fixtures
@pytest.mark.parametrize("name", ["nvidia_ada_tiny32.pkl", "nvidia_ada_small64.pkl"])
def test_real_fixture_converts(name: str) -> None:
    snap = read_nvidia_pickle(fixture(name))
    assert set(snap) == {"training_set_kwargs", "G", "D", "G_ema", "augment_pipe"}
    G = snap["G_ema"]
    assert isinstance(G, PersistentModule) and G.class_name == "Generator"
    assert isinstance(G.module_src, str) and "class" in G.module_src  # kept as text, never run
    sd, cfg = nvidia_generator_to_rosinality(snap)
    size, D = cfg["size"], cfg["style_dim"]
    assert size == G.state["img_resolution"] and D == G.state["w_dim"] == G.state["z_dim"]
    assert G.state["num_ws"] == 2 * int(math.log2(size)) - 2
    assert cfg["n_mlp"] == G.init_kwargs["mapping_kwargs"]["num_layers"]
    assert cfg["lr_mlp"] == pytest.approx(0.01)
    assert sorted(cfg["channels"]) == [2 ** i for i in range(2, int(math.log2(size)) + 1)]
    expected = rosinality_shapes(size, D, cfg["n_mlp"], cfg["channels"])
    assert set(sd) == set(expected)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert tuple(cfg["w_avg"].shape) == (D,)
    for k, v in sd.items():
        if k.endswith("kernel"):
            assert torch.equal(v, standard_kernel()), k
    # Values land where they should.
    nv = module_state_dict(G)
    assert torch.equal(sd["style.1.weight"], nv["mapping.fc0.weight"])
    assert torch.equal(sd["input.input"][0], nv["synthesis.b4.const"])
    assert torch.equal(sd["convs.0.conv.weight"][0], nv["synthesis.b8.conv0.weight"])
    assert torch.equal(sd["noises.noise_2"][0, 0], nv["synthesis.b8.conv1.noise_const"])
    assert torch.equal(sd["to_rgbs.0.bias"].flatten(), nv["synthesis.b8.torgb.bias"])


def test_tiny32_key_names_match_rosinality_fixture() -> None:
    ros = torch.load(fixture("rosinality_tiny32.pt"), map_location="cpu", weights_only=True)["g_ema"]
    sd, _ = nvidia_generator_to_rosinality(fixture("nvidia_ada_tiny32.pkl"))
    assert list(sd) == list(ros)


@pytest.mark.parametrize("name", ["nvidia_ada_tiny32", "nvidia_ada_small64"])
def test_real_fixture_renders_reference_images(name: str) -> None:
    gen = pytest.importorskip("optinv.engine.generator")
    sd, cfg = nvidia_generator_to_rosinality(fixture(name + ".pkl"))
    exp = torch.load(fixture(name + ".expected.pt"), map_location="cpu", weights_only=True)
    g = gen.Generator(cfg["size"], cfg["style_dim"], cfg["n_mlp"], channels=cfg["channels"], lr_mlp=cfg["lr_mlp"])
    g.load_state_dict(sd, strict=True)
    g.eval()
    with torch.no_grad():
        assert (g.mapping(exp["z"]) - exp["ws"][:, 0]).abs().max() < 1e-5
        assert (g(exp["z"]) - exp["img_z"]).abs().max() < 1e-4
        assert (g.synthesis(exp["wplus"]) - exp["img_wplus"]).abs().max() < 1e-4


# ----------------------------------------------------------------- structure & round trip
def test_module_state_dict_names_like_nn_module() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.ReLU()))
    net[1][0].register_buffer("scratch", torch.ones(1), persistent=False)
    net[1].add_module("gone", None)

    def record(m: torch.nn.Module | None) -> PersistentModule | None:
        if m is None:
            return None
        state = dict(m.__dict__)
        state["_modules"] = {k: record(v) for k, v in m._modules.items()}
        return PersistentModule(type(m).__name__, state)

    ours = module_state_dict(record(net))
    ref = net.state_dict()
    assert list(ours) == list(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


@pytest.mark.parametrize("source", ["random", "rosinality_fixture"])
def test_write_read_round_trip(source: str, tmp_path: Path) -> None:
    if source == "random":
        sd, cfg = random_rosinality()
    else:
        ck = torch.load(fixture("rosinality_tiny32.pt"), map_location="cpu", weights_only=True)
        sd = ck["g_ema"]
        cfg = {"size": 32, "style_dim": sd["style.1.weight"].shape[0], "n_mlp": 4, "w_avg": ck["latent_avg"]}
    path = write_nvidia_style_pickle(sd, cfg, tmp_path / "rt.pkl")

    seen: set[tuple[str, str]] = set()

    class Recording(SafeNvidiaUnpickler):
        def find_class(self, module: str, name: str):
            seen.add((module, name))
            return super().find_class(module, name)

    snap = Recording(io.BytesIO(path.read_bytes())).load()
    assert seen == NVIDIA_GLOBALS  # the same globals NVIDIA's own snapshots use
    G = snap["G_ema"]
    assert [*G.modules] == ["synthesis", "mapping"]
    assert G.init_kwargs["mapping_kwargs"]["lr_multiplier"] == pytest.approx(cfg.get("lr_mlp", 0.01))
    assert set(G.modules["synthesis"].modules["b8"].modules) == {"conv0", "conv1", "torgb"}
    assert "affine" in G.modules["synthesis"].modules["b8"].modules["conv0"].modules

    sd2, cfg2 = nvidia_generator_to_rosinality(path)
    assert set(sd2) == set(sd)
    for k in sd:
        assert torch.equal(sd2[k], sd[k]), k
    assert torch.equal(cfg2["w_avg"], cfg["w_avg"])
    assert (cfg2["size"], cfg2["style_dim"], cfg2["n_mlp"]) == (cfg["size"], cfg["style_dim"], cfg["n_mlp"])
    assert cfg2["lr_mlp"] == pytest.approx(cfg.get("lr_mlp", 0.01))
    if "channels" in cfg:
        assert cfg2["channels"] == cfg["channels"]


# ------------------------------------------------------------------------------ safety
class _Exploit:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _marker() -> Path:
    return Path(tempfile.gettempdir()) / f"optinv_pwned_{secrets.token_hex(8)}"


@pytest.mark.parametrize("payload", ["os.system", "builtins.exec", "nested"])
def test_malicious_reduce_is_refused(payload: str, tmp_path: Path) -> None:
    marker = _marker()
    try:
        if payload == "os.system":
            obj = {"G_ema": _Exploit(os.system, f"touch {marker}")}
            refused = f"{os.system.__module__}.system"
        elif payload == "builtins.exec":
            obj = {"G_ema": _Exploit(exec, f"open({str(marker)!r}, 'w').close()")}
            refused = "builtins.exec"
        else:  # hidden deep inside otherwise well-formed data
            obj = {"G_ema": {"_parameters": [torch.zeros(2), _Exploit(os.system, f"touch {marker}")]}}
            refused = f"{os.system.__module__}.system"
        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=4))
        with pytest.raises(UnsafePickleError, match=refused.replace(".", r"\.")) as info:
            read_nvidia_pickle(path)
        assert isinstance(info.value, ValueError)
        assert not marker.exists()
    finally:
        if marker.exists():
            marker.unlink()


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    class PidPickler(pickle.Pickler):
        def persistent_id(self, obj):
            return "ext" if obj == "outside" else None

    buf = io.BytesIO()
    PidPickler(buf, protocol=4).dump({"G_ema": "outside"})
    with pytest.raises(UnsafePickleError, match="persistent"):
        read_nvidia_pickle(io.BytesIO(buf.getvalue()))


def test_module_src_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = _marker()
    src = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nclass Generator: pass\n"
    # Write a record the way NVIDIA does: a reduce to torch_utils.persistence._reconstruct_persistent_obj.
    fake = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # only used to be named by pickle, never called here
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = fake.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class Persistent:
        def __reduce__(self):
            meta = {"type": "class", "version": 6, "module_src": src, "class_name": "Generator",
                    "state": {"_parameters": {"w": torch.ones(2)}, "_buffers": {}, "_modules": {}}}
            return _reconstruct_persistent_obj, (meta,)

    path = tmp_path / "src.pkl"
    with monkeypatch.context() as mp:
        mp.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
        mp.setitem(sys.modules, "torch_utils.persistence", fake)
        path.write_bytes(pickle.dumps({"G_ema": Persistent(), "D": None}, protocol=4))
    try:
        snap = read_nvidia_pickle(path)
        assert not marker.exists()
        assert snap["G_ema"].module_src == src
        assert torch.equal(module_state_dict(snap["G_ema"])["w"], torch.ones(2))
    finally:
        if marker.exists():
            marker.unlink()


def _valid_pickle_bytes(tmp_path: Path) -> bytes:
    real = FIXTURES / "nvidia_ada_tiny32.pkl"
    if real.exists():
        return real.read_bytes()
    sd, cfg = random_rosinality()
    return write_nvidia_style_pickle(sd, cfg, tmp_path / "valid.pkl").read_bytes()


@pytest.mark.parametrize("kind,message", [("truncated", "truncated"), ("text", "not a pickle"),
                                          ("empty", "empty"), ("zip", "zip")])
def test_bad_files_give_clear_errors(kind: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.pkl"
    if kind == "truncated":
        path.write_bytes(_valid_pickle_bytes(tmp_path)[:1000])
    elif kind == "text":
        path.write_text("this is a README, not a network\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"x": torch.ones(1)}, path)
    with pytest.raises(NvidiaPickleFormatError, match=message) as info:
        read_nvidia_pickle(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


# -------------------------------------------------------------- unconvertible generators
def _mutated(path: Path, edit) -> dict:
    snap = read_nvidia_pickle(path)
    edit(snap["G_ema"])
    return snap


@pytest.mark.parametrize("edit,message", [
    (lambda G: G.state.update(c_dim=1), "c_dim"),
    (lambda G: G.state.update(z_dim=G.state["w_dim"] + 1), "z_dim"),
    (lambda G: G.modules["synthesis"].modules["b8"].state.update(architecture="resnet"), "architecture"),
    (lambda G: G.modules["synthesis"].modules["b16"].modules["conv1"].state.update(conv_clamp=256), "conv_clamp"),
])
def test_inexact_conversions_are_refused(synthetic_pickle: Path, edit, message: str) -> None:
    with pytest.raises(NvidiaConversionError, match=message):
        nvidia_generator_to_rosinality(_mutated(synthetic_pickle, edit))


def test_uniform_conv_clamp_is_carried_and_fp16_only_warns(synthetic_pickle: Path) -> None:
    def edit(G: PersistentModule) -> None:
        G.modules["synthesis"].modules["b16"].state.update(use_fp16=True)
        for blk in G.modules["synthesis"].modules.values():
            for m in [blk, *blk.modules.values()]:
                if isinstance(m, PersistentModule):
                    m.state.update(conv_clamp=256)

    with pytest.warns(UserWarning) as rec:
        sd, config = nvidia_generator_to_rosinality(_mutated(synthetic_pickle, edit))
    assert config["conv_clamp"] == 256.0
    text = " ".join(str(w.message) for w in rec)
    assert "fp16" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sd_plain, _ = nvidia_generator_to_rosinality(synthetic_pickle)
    assert all(torch.equal(sd[k], sd_plain[k]) for k in sd)
