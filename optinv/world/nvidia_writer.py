"""Write a rosinality generator as an NVIDIA stylegan2-ada-pytorch snapshot (fixtures, round trips).

The file has NVIDIA's structure (persistent-module records, ``_parameters``/``_buffers``,
``_init_kwargs``) but a placeholder ``module_src``, so only :mod:`optinv.io.nvidia_unpickler` opens it.
Training-only: the engine reads NVIDIA files and never writes them.
"""

from __future__ import annotations

import collections
import math
import pickle
from pathlib import Path
from typing import Any

import torch

from optinv.io.fileio import atomic_write
from optinv.io.nvidia_convert import (_blur_kernel, _check_shapes, _f32, _rosinality_shapes)
from optinv.io.nvidia_unpickler import NvidiaConversionError, PathLike, PersistentModule

__all__ = ["write_nvidia_style_pickle"]


# ---------------------------------------------------------------------------- writing
class _GlobalRef:
    """A callable that pickles as the global ``module.name`` without that module existing here."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self.module}.{self.name} is a pickling placeholder; it is never called")


_RECONSTRUCT_REF = _GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj")
_PLACEHOLDER_SRC = ("# Written by optinv.world.nvidia_writer.write_nvidia_style_pickle: the NVIDIA snapshot layout\n"
                    "# without NVIDIA's network code. Read it with optinv.io.nvidia_unpickler.read_nvidia_pickle.\n")


class _NvidiaStylePickler(pickle._Pickler):  # the pure-Python pickler lets us emit a foreign global
    """Pickles :class:`PersistentModule` records the way NVIDIA's persistence module does."""

    dispatch = dict(pickle._Pickler.dispatch)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, PersistentModule):
            meta = {"type": "class", "version": obj.version if obj.version is not None else 6,
                    "module_src": obj.module_src, "class_name": obj.class_name, "state": obj.state}
            return _RECONSTRUCT_REF, (meta,)
        return NotImplemented

    def _save_global_ref(self, obj: _GlobalRef) -> None:
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    dispatch[_GlobalRef] = _save_global_ref


def _record(class_name: str, *, params: dict[str, torch.Tensor] | None = None,
            buffers: dict[str, torch.Tensor] | None = None, modules: dict[str, PersistentModule] | None = None,
            attrs: dict[str, Any] | None = None, init_args: tuple = (),
            init_kwargs: dict[str, Any] | None = None) -> PersistentModule:
    """A persistent-module record whose state looks like a pickled ``nn.Module.__dict__``."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": collections.OrderedDict(
            (k, torch.nn.Parameter(_f32(v).clone(), requires_grad=False)) for k, v in (params or {}).items()),
        "_buffers": collections.OrderedDict((k, _f32(v).clone()) for k, v in (buffers or {}).items()),
        "_non_persistent_buffers_set": set(),
        "_modules": collections.OrderedDict(modules or {}),
    }
    state.update(attrs or {})
    state["_init_args"] = tuple(init_args)
    state["_init_kwargs"] = dict(init_kwargs or {})
    return PersistentModule(class_name, state, _PLACEHOLDER_SRC, 6)


def _channels_from_state(sd: dict[str, torch.Tensor], size: int) -> dict[int, int]:
    channels = {4: int(sd["input.input"].shape[1])}
    for k, log in enumerate(range(3, int(math.log2(size)) + 1)):
        channels[2 ** log] = int(sd[f"convs.{2 * k}.conv.weight"].shape[1])
    return channels


def write_nvidia_style_pickle(state_dict_rosinality: dict[str, torch.Tensor], config: dict[str, Any],
                              path: PathLike) -> Path:
    """Write a rosinality generator as an NVIDIA-layout snapshot (``G_ema`` etc.), for round trips.

    The file has NVIDIA's structure (persistent records, ``_parameters``/``_buffers``,
    ``_init_kwargs``) but a placeholder ``module_src``, so only :mod:`optinv.io.nvidia_unpickler` opens it.
    ``config`` needs ``size, style_dim, n_mlp``; ``lr_mlp`` (0.01), ``channels`` (from the
    shapes) and ``w_avg`` (zeros) are optional.
    """
    size, D, n_mlp = int(config["size"]), int(config["style_dim"]), int(config["n_mlp"])
    sd, channels = _checked_state(dict(state_dict_rosinality), config, size, D, n_mlp)
    w_avg = config.get("w_avg")
    w_avg = torch.zeros(D) if w_avg is None else _f32(torch.as_tensor(w_avg)).reshape(D)
    G = _Snapshot(sd, D, size, channels).generator(n_mlp, float(config.get("lr_mlp", 0.01)), w_avg)
    snapshot = {"training_set_kwargs": {"resolution": size}, "G": G, "D": None, "G_ema": G, "augment_pipe": None}

    def dump(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            _NvidiaStylePickler(f, protocol=4).dump(snapshot)

    return atomic_write(path, dump)


def _checked_state(sd: dict[str, torch.Tensor], config: dict[str, Any], size: int, D: int,
                   n_mlp: int) -> tuple[dict[str, torch.Tensor], dict[int, int]]:
    """The state dict with the standard FIR buffers filled in, checked against the config; its channels."""
    try:
        channels = {int(r): int(c) for r, c in (config.get("channels") or _channels_from_state(sd, size)).items()}
    except KeyError as e:
        raise NvidiaConversionError(f"state dict lacks {e}, cannot infer channels") from None
    for k in list(sd):  # fixed FIR buffers are optional in rosinality files; we add the standard ones
        if k.endswith(("blur.kernel", "upsample.kernel")) and not torch.allclose(sd[k].float(), _blur_kernel()):
            raise NvidiaConversionError(f"{k} is not the standard [1,3,3,1] kernel NVIDIA's layout implies")
    expected = _rosinality_shapes(size, D, n_mlp, channels)
    for k in expected:
        if k.endswith(("blur.kernel", "upsample.kernel")):
            sd.setdefault(k, _blur_kernel())
    _check_shapes(sd, expected, "rosinality state dict")
    return sd, channels


class _Snapshot:
    """Builds NVIDIA's persistent-module records from a rosinality state dict, network by network."""

    def __init__(self, sd: dict[str, torch.Tensor], D: int, size: int, channels: dict[int, int]) -> None:
        self.sd, self.D, self.size, self.channels = sd, D, size, channels
        self.log_size = int(round(math.log2(size)))
        self.num_ws = 2 * self.log_size - 2
        self.filt = _blur_kernel() / 4

    def affine(self, src: str, cin: int) -> PersistentModule:
        sd, D = self.sd, self.D
        return _record("FullyConnectedLayer", params={"weight": sd[f"{src}.weight"], "bias": sd[f"{src}.bias"]},
                       attrs={"activation": "linear", "weight_gain": 1 / math.sqrt(D), "bias_gain": 1},
                       init_args=(D, cin), init_kwargs={"bias_init": 1})

    def syn_layer(self, src: str, noise: str, cin: int, cout: int, res: int, up: int) -> PersistentModule:
        sd = self.sd
        kw: dict[str, Any] = {"w_dim": self.D, "resolution": res}
        if up > 1:
            kw.update(up=up, resample_filter=[1, 3, 3, 1])
        kw.update(conv_clamp=None, channels_last=False)
        return _record(
            "SynthesisLayer",
            params={"weight": sd[f"{src}.conv.weight"][0], "noise_strength": sd[f"{src}.noise.weight"].reshape(()),
                    "bias": sd[f"{src}.activate.bias"]},
            buffers={"resample_filter": self.filt, "noise_const": sd[noise].reshape(res, res)},
            modules={"affine": self.affine(f"{src}.conv.modulation", cin)},
            attrs={"resolution": res, "up": up, "use_noise": True, "activation": "lrelu", "conv_clamp": None,
                   "padding": 1, "act_gain": math.sqrt(2)},
            init_args=(cin, cout), init_kwargs=kw)

    def torgb(self, src: str, cin: int) -> PersistentModule:
        sd = self.sd
        return _record("ToRGBLayer", params={"weight": sd[f"{src}.conv.weight"][0], "bias": sd[f"{src}.bias"].reshape(3)},
                       modules={"affine": self.affine(f"{src}.conv.modulation", cin)},
                       attrs={"conv_clamp": None, "weight_gain": 1 / math.sqrt(cin)},
                       init_args=(cin, 3), init_kwargs={"w_dim": self.D, "conv_clamp": None, "channels_last": False})

    def block(self, k: int, r: int) -> PersistentModule:
        """Synthesis block ``b{r}`` (the k-th resolution): its convolutions and its toRGB."""
        D, size = self.D, self.size
        cout, cin = self.channels[r], (self.channels[r // 2] if r > 4 else 0)
        mods: dict[str, PersistentModule] = {}
        if r == 4:
            mods["conv1"] = self.syn_layer("conv1", "noises.noise_0", cout, cout, 4, 1)
            mods["torgb"] = self.torgb("to_rgb1", cout)
        else:
            b = k - 1
            mods["conv0"] = self.syn_layer(f"convs.{2 * b}", f"noises.noise_{2 * b + 1}", cin, cout, r, 2)
            mods["conv1"] = self.syn_layer(f"convs.{2 * b + 1}", f"noises.noise_{2 * b + 2}", cout, cout, r, 1)
            mods["torgb"] = self.torgb(f"to_rgbs.{b}", cout)
        blk_kw = {"w_dim": D, "resolution": r, "img_channels": 3, "is_last": r == size, "use_fp16": False,
                  "conv_clamp": None}
        return _record(
            "SynthesisBlock", params={"const": self.sd["input.input"][0]} if r == 4 else None,
            buffers={"resample_filter": self.filt}, modules=mods,
            attrs={"in_channels": cin, "w_dim": D, "resolution": r, "img_channels": 3, "is_last": r == size,
                   "architecture": "skip", "use_fp16": False, "channels_last": False,
                   "num_conv": 1 if r == 4 else 2, "num_torgb": 1},
            init_args=(cin, cout), init_kwargs=blk_kw)

    def synthesis(self) -> PersistentModule:
        D, size = self.D, self.size
        resolutions = [2 ** i for i in range(2, self.log_size + 1)]
        blocks = {f"b{r}": self.block(k, r) for k, r in enumerate(resolutions)}
        syn_kw = {"w_dim": D, "img_resolution": size, "img_channels": 3, "num_fp16_res": 0, "conv_clamp": None}
        return _record("SynthesisNetwork", modules=blocks,
                       attrs={"w_dim": D, "img_resolution": size, "img_resolution_log2": self.log_size,
                              "img_channels": 3, "block_resolutions": resolutions, "num_ws": self.num_ws},
                       init_kwargs=syn_kw)

    def mapping(self, n_mlp: int, lr: float, w_avg: torch.Tensor) -> PersistentModule:
        sd, D, num_ws = self.sd, self.D, self.num_ws
        fcs = {f"fc{i}": _record("FullyConnectedLayer",
                                 params={"weight": sd[f"style.{i + 1}.weight"], "bias": sd[f"style.{i + 1}.bias"]},
                                 attrs={"activation": "lrelu", "weight_gain": lr / math.sqrt(D), "bias_gain": lr},
                                 init_args=(D, D), init_kwargs={"activation": "lrelu", "lr_multiplier": lr})
               for i in range(n_mlp)}
        return _record("MappingNetwork", buffers={"w_avg": w_avg}, modules=fcs,
                       attrs={"z_dim": D, "c_dim": 0, "w_dim": D, "num_ws": num_ws, "num_layers": n_mlp,
                              "w_avg_beta": 0.995},
                       init_kwargs={"z_dim": D, "c_dim": 0, "w_dim": D, "num_ws": num_ws, "num_layers": n_mlp,
                                    "lr_multiplier": lr})

    def generator(self, n_mlp: int, lr: float, w_avg: torch.Tensor) -> PersistentModule:
        D, size = self.D, self.size
        return _record("Generator", modules={"synthesis": self.synthesis(), "mapping": self.mapping(n_mlp, lr, w_avg)},
                       attrs={"z_dim": D, "c_dim": 0, "w_dim": D, "img_resolution": size, "img_channels": 3,
                              "num_ws": self.num_ws},
                       init_kwargs={"z_dim": D, "c_dim": 0, "w_dim": D, "img_resolution": size, "img_channels": 3,
                                    "mapping_kwargs": {"num_layers": n_mlp, "lr_multiplier": lr},
                                    "synthesis_kwargs": {"num_fp16_res": 0, "conv_clamp": None}})
