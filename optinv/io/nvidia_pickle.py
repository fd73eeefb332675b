"""Read NVIDIA stylegan2-ada-pytorch training pickles without running any code stored in them.

NVIDIA's snapshots (``{training_set_kwargs, G, D, G_ema, augment_pipe}``) reduce every network
module to ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` carries
the module's Python source (``module_src``) that NVIDIA's loader ``exec()``s. A plain
``pickle.load`` therefore runs whatever source the file contains. Here an allowlisting
unpickler turns each such record into an inert :class:`PersistentModule` (the source is kept as
a string and never executed), tensors are rebuilt through ``torch.load(weights_only=True)``, and
every other global is refused with :class:`UnsafePickleError`.

:func:`nvidia_generator_to_rosinality` then renames ``G_ema``'s weights into the rosinality
``stylegan2-pytorch`` Generator layout that :mod:`optinv.engine.generator` loads. The inverse (for
fixtures and round trips) is :mod:`optinv.world.nvidia_writer`.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Union

import numpy as np
import torch

from optinv.io.fileio import first_line

try:  # numpy >= 2 moved the scalar constructor; old pickles name either spelling
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import scalar as _np_scalar

__all__ = [
    "NvidiaPickleError", "UnsafePickleError", "NvidiaPickleFormatError", "NvidiaConversionError",
    "PersistentModule", "EasyDict", "SafeNvidiaUnpickler", "read_nvidia_pickle", "module_state_dict",
    "nvidia_generator_to_rosinality",
]

PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------------- errors
class NvidiaPickleError(ValueError):
    """Base class: anything wrong with an NVIDIA pickle (a ValueError, so callers can wrap it)."""


class UnsafePickleError(NvidiaPickleError):
    """The pickle asks for a global (or feature) outside the allowlist; nothing was executed."""


class NvidiaPickleFormatError(NvidiaPickleError):
    """The file is not a pickle, is truncated, or is not laid out like an NVIDIA snapshot."""


class NvidiaConversionError(NvidiaPickleError):
    """The generator cannot be expressed exactly in the rosinality layout."""


# ------------------------------------------------------------------------- inert records
@dataclass(eq=False)
class PersistentModule:
    """Inert stand-in for one NVIDIA persistent network module.

    ``state`` is the module's ``__dict__`` as pickled (``_parameters``, ``_buffers``,
    ``_modules``, ``_init_args``/``_init_kwargs`` and plain attributes). ``module_src`` is the
    source NVIDIA would have executed; it is only ever kept as a string.
    """

    class_name: str
    state: dict[str, Any]
    module_src: str = field(default="", repr=False)
    version: int | None = None

    @property
    def modules(self) -> dict[str, PersistentModule | None]:
        """Child modules, as ``nn.Module._modules`` would hold them."""
        return self.state.get("_modules") or {}

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments (NVIDIA stores them as ``_init_kwargs``)."""
        kw = self.state.get("_init_kwargs", self.state.get("init_kwargs"))
        return dict(kw) if isinstance(kw, dict) else {}

    @property
    def init_args(self) -> tuple:
        """Constructor positional arguments (``_init_args``)."""
        args = self.state.get("_init_args", self.state.get("init_args"))
        return tuple(args) if isinstance(args, (tuple, list)) else ()

    def attr(self, name: str, default: Any = None) -> Any:
        """A plain attribute, falling back to the constructor kwargs, then ``default``."""
        if name in self.state:
            return self.state[name]
        return self.init_kwargs.get(name, default)

    def __repr__(self) -> str:
        return f"PersistentModule({self.class_name!r}, modules={list(self.modules)})"


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict that also allows attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


# ------------------------------------------------------- allowlisted global replacements
def _reconstruct_persistent_obj(meta: Any) -> PersistentModule:
    """Replacement for NVIDIA's loader: record the module, never exec ``module_src``."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise NvidiaPickleFormatError("persistent object record is not a {'type': 'class', ...} dict")
    class_name, state, src = meta.get("class_name"), meta.get("state"), meta.get("module_src", "")
    if not isinstance(class_name, str) or not isinstance(state, dict) or not isinstance(src, str):
        raise NvidiaPickleFormatError(f"malformed persistent object record for {class_name!r}")
    version = meta.get("version")
    return PersistentModule(class_name, state, src, int(version) if isinstance(version, int) else None)


def _load_storage_from_bytes(data: Any) -> torch.storage.TypedStorage:
    """Replacement for ``torch.storage._load_from_bytes`` that only loads tensor data."""
    if not isinstance(data, (bytes, bytearray)):
        raise NvidiaPickleFormatError("tensor storage record does not hold bytes")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            first = first_line(e, limit=None)
            raise UnsafePickleError(f"embedded tensor storage refused by torch's weights_only loader: {first}") from None
        raise NvidiaPickleFormatError(f"embedded tensor storage is corrupt: {e}") from None
    except Exception as e:  # torch raises many types for corrupt data
        raise NvidiaPickleFormatError(f"embedded tensor storage is corrupt: {type(e).__name__}: {e}") from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise NvidiaPickleFormatError(f"embedded storage blob holds {type(storage).__name__}, not a tensor storage")
    return storage


def _int_tuple(x: Any, what: str) -> tuple[int, ...]:
    if not isinstance(x, (tuple, list, torch.Size)) or not all(isinstance(v, int) for v in x):
        raise NvidiaPickleFormatError(f"tensor record has a malformed {what}")
    return tuple(x)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """torch's own ``_rebuild_tensor_v2`` with validated arguments and any hooks dropped."""
    if not isinstance(storage, torch.storage.TypedStorage) or not isinstance(storage_offset, int):
        raise NvidiaPickleFormatError("tensor record does not reference a tensor storage")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, _int_tuple(size, "size"),
                                           _int_tuple(stride, "stride"), bool(requires_grad),
                                           collections.OrderedDict(),
                                           metadata if isinstance(metadata, dict) else None)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.nn.Parameter:
    """torch's own ``_rebuild_parameter`` with hooks dropped."""
    if not isinstance(data, torch.Tensor):
        raise NvidiaPickleFormatError("parameter record does not hold a tensor")
    return torch._utils._rebuild_parameter(data, bool(requires_grad), collections.OrderedDict())


def _numpy_scalar(dtype: Any, *args: Any) -> Any:
    """numpy's scalar constructor, refusing object dtypes (they could smuggle objects)."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("numpy scalar with a non-numeric dtype refused")
    return _np_scalar(dtype, *args)


_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,  # protocol <= 3 pickles spell `_non_persistent_buffers_set` this way
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("dnnlib.util", "EasyDict"): EasyDict,
}


class SafeNvidiaUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals NVIDIA snapshots need, to inert replacements."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load '{module}.{name}': not on the allowlist for NVIDIA pickles "
                f"(nothing from the file was executed)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused persistent id: NVIDIA snapshots do not use them")


# ---------------------------------------------------------------------------- reading
def _describe_source(src: PathLike | IO[bytes]) -> str:
    return str(src) if isinstance(src, (str, os.PathLike)) else getattr(src, "name", "<stream>")


def read_nvidia_pickle(path: PathLike | IO[bytes]) -> dict[str, Any]:
    """Load an NVIDIA snapshot's top-level dict, with modules as :class:`PersistentModule`.

    Never executes code from the file; raises :class:`UnsafePickleError` for anything outside
    the allowlist and :class:`NvidiaPickleFormatError` for non-pickle or truncated data.
    """
    where = _describe_source(path)
    if isinstance(path, (str, os.PathLike)):
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise NvidiaPickleFormatError(f"cannot read {where}: {e.strerror or e}") from None
    else:
        data = path.read()
    if not isinstance(data, (bytes, bytearray)):
        raise NvidiaPickleFormatError(f"{where} was opened in text mode; pass a path or a binary file")
    if not data:
        raise NvidiaPickleFormatError(f"{where} is empty, not an NVIDIA pickle")
    if data[:4] == b"PK\x03\x04":
        raise NvidiaPickleFormatError(f"{where} is a zip archive (torch.save format?), not an NVIDIA pickle")
    if data[0] != pickle.PROTO[0] or len(data) < 2 or not 2 <= data[1] <= pickle.HIGHEST_PROTOCOL:
        raise NvidiaPickleFormatError(f"{where} is not a pickle (no pickle protocol 2+ header)")
    try:
        obj = SafeNvidiaUnpickler(io.BytesIO(data)).load()
    except NvidiaPickleError:
        raise
    except (EOFError, pickle.UnpicklingError) as e:
        raise NvidiaPickleFormatError(f"{where} is truncated or corrupt ({e or type(e).__name__})") from None
    except Exception as e:  # anything else raised while decoding untrusted bytes means "malformed"
        raise NvidiaPickleFormatError(f"{where} is a malformed pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise NvidiaPickleFormatError(f"{where} holds a {type(obj).__name__}, not an NVIDIA snapshot dict")
    return obj


def module_state_dict(pm: PersistentModule) -> dict[str, torch.Tensor]:
    """Collect parameters and persistent buffers with the dotted names ``nn.Module.state_dict()`` uses."""
    out: dict[str, torch.Tensor] = {}

    def walk(m: PersistentModule, prefix: str) -> None:
        st = m.state
        skip = st.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            for name, t in (st.get(group) or {}).items():
                if t is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(t, torch.Tensor):
                    raise NvidiaPickleFormatError(f"{prefix}{name} is a {type(t).__name__}, not a tensor")
                out[prefix + name] = t.detach()
        for name, sub in m.modules.items():
            if sub is None:
                continue
            if not isinstance(sub, PersistentModule):
                raise NvidiaPickleFormatError(f"submodule {prefix}{name} is a {type(sub).__name__}")
            walk(sub, f"{prefix}{name}.")

    walk(pm, "")
    return out


# ------------------------------------------------------------------ rosinality layout
def _blur_kernel() -> torch.Tensor:
    """rosinality's up-sampling FIR: outer([1,3,3,1]) / sum × 4 (= NVIDIA's filter × up²)."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None, :] * k[:, None]
    return k / k.sum() * 4


def _rosinality_shapes(size: int, style_dim: int, n_mlp: int, channels: dict[int, int]) -> dict[str, tuple[int, ...]]:
    """Every key and shape of a rosinality Generator's state dict, in its registration order."""
    log_size = int(math.log2(size))
    c4 = channels[4]
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(1, n_mlp + 1):
        shapes[f"style.{i}.weight"], shapes[f"style.{i}.bias"] = (style_dim, style_dim), (style_dim,)
    shapes["input.input"] = (1, c4, 4, 4)

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        shapes[f"{prefix}.conv.weight"] = (1, cout, cin, 3, 3)
        if up:
            shapes[f"{prefix}.conv.blur.kernel"] = (4, 4)
        shapes[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        shapes[f"{prefix}.conv.modulation.bias"] = (cin,)
        shapes[f"{prefix}.noise.weight"] = (1,)
        shapes[f"{prefix}.activate.bias"] = (cout,)

    def to_rgb(prefix: str, cin: int, up: bool) -> None:
        shapes[f"{prefix}.bias"] = (1, 3, 1, 1)
        if up:
            shapes[f"{prefix}.upsample.kernel"] = (4, 4)
        shapes[f"{prefix}.conv.weight"] = (1, 3, cin, 1, 1)
        shapes[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        shapes[f"{prefix}.conv.modulation.bias"] = (cin,)

    styled("conv1", c4, c4, False)
    to_rgb("to_rgb1", c4, False)
    cin = c4
    for k, log in enumerate(range(3, log_size + 1)):
        cout = channels[2 ** log]
        styled(f"convs.{2 * k}", cin, cout, True)
        styled(f"convs.{2 * k + 1}", cout, cout, False)
        cin = cout
    for k, log in enumerate(range(3, log_size + 1)):
        to_rgb(f"to_rgbs.{k}", channels[2 ** log], True)
    for j in range((log_size - 2) * 2 + 1):
        res = 2 ** ((j + 5) // 2)
        shapes[f"noises.noise_{j}"] = (1, 1, res, res)
    return shapes


def _check_shapes(sd: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], what: str) -> None:
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    if missing or extra:
        raise NvidiaConversionError(f"{what}: missing keys {missing[:6]}, unexpected keys {extra[:6]}")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise NvidiaConversionError(f"{what}: {k} has shape {tuple(sd[k].shape)}, expected {shape}")


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def _find_generator(path_or_obj: PathLike | dict[str, Any] | PersistentModule) -> PersistentModule:
    obj: Any = path_or_obj
    if isinstance(obj, (str, os.PathLike)):
        obj = read_nvidia_pickle(obj)
    if isinstance(obj, dict):
        if not isinstance(obj.get("G_ema"), PersistentModule):
            raise NvidiaPickleFormatError(f"no G_ema network in the snapshot (keys: {', '.join(map(str, obj))})")
        obj = obj["G_ema"]
    if not isinstance(obj, PersistentModule) or obj.class_name != "Generator":
        name = obj.class_name if isinstance(obj, PersistentModule) else type(obj).__name__
        raise NvidiaConversionError(f"expected NVIDIA's Generator, got {name}")
    return obj


def _mapping_lr(G: PersistentModule, mapping: PersistentModule, n_mlp: int) -> float:
    """The mapping lr multiplier as the layers really use it (their ``bias_gain``)."""
    declared = [G.init_kwargs.get("mapping_kwargs", {}).get("lr_multiplier"),
                mapping.init_kwargs.get("lr_multiplier")]
    per_layer = set()
    for i in range(n_mlp):
        fc = mapping.modules.get(f"fc{i}")
        if not isinstance(fc, PersistentModule):
            raise NvidiaConversionError(f"mapping network lacks fc{i}")
        lr = fc.state.get("bias_gain", fc.init_kwargs.get("lr_multiplier"))
        per_layer.add(float(lr) if lr is not None else None)
        if fc.attr("activation", "linear") != "lrelu":
            raise NvidiaConversionError(f"mapping.fc{i} uses activation {fc.attr('activation')!r}, not 'lrelu'")
    if len(per_layer) > 1:
        raise NvidiaConversionError(f"mapping layers use different lr multipliers {sorted(map(str, per_layer))}")
    lr = per_layer.pop()
    for d in declared:
        if d is not None and lr is not None and not math.isclose(float(d), lr, rel_tol=1e-6):
            raise NvidiaConversionError(f"declared mapping lr_multiplier {d} disagrees with the layers' {lr}")
    if lr is None:
        lr = next((float(d) for d in declared if d is not None), 0.01)  # NVIDIA's default
    return lr


def nvidia_generator_to_rosinality(path_or_obj: PathLike | dict[str, Any] | PersistentModule
                                   ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Rename NVIDIA ``G_ema`` weights into a rosinality Generator state dict plus its config.

    Accepts a pickle path, the dict from :func:`read_nvidia_pickle`, or the ``G_ema`` record.
    Config: ``size, style_dim, n_mlp, lr_mlp, channels {res: width}, w_avg, conv_clamp``
    (optinv's Generator clamps activations like NVIDIA when ``conv_clamp`` is set). Raises
    :class:`NvidiaConversionError` when the result would not render the same images
    (conditional models, z_dim != w_dim, non-'skip' architectures, mixed clamp values);
    fp16 layers only warn, since fp32 inference of them is fine.
    """
    G = _find_generator(path_or_obj)
    w_dim, size = _checked_dims(G)
    mapping, synthesis = G.modules.get("mapping"), G.modules.get("synthesis")
    if not isinstance(mapping, PersistentModule) or not isinstance(synthesis, PersistentModule):
        raise NvidiaConversionError("Generator lacks its mapping or synthesis network")
    sd = module_state_dict(G)
    n_mlp = 0
    while f"mapping.fc{n_mlp}.weight" in sd:
        n_mlp += 1
    if n_mlp == 0:
        raise NvidiaConversionError("mapping network has no fc layers")
    lr_mlp = _mapping_lr(G, mapping, n_mlp)
    resolutions = [2 ** i for i in range(2, int(round(math.log2(size))) + 1)]
    conv_clamp = _synthesis_clamp(synthesis, sd, resolutions)
    out = _renamed(sd, n_mlp, resolutions)
    channels = {4: int(out["input.input"].shape[1])}
    for k, r in enumerate(resolutions[1:]):
        channels[r] = int(out[f"convs.{2 * k}.conv.weight"].shape[1])
    _check_shapes(out, _rosinality_shapes(size, w_dim, n_mlp, channels), "converted NVIDIA generator")
    w_avg = _f32(sd["mapping.w_avg"]) if "mapping.w_avg" in sd else None
    if w_avg is not None and tuple(w_avg.shape) != (w_dim,):
        raise NvidiaConversionError(f"mapping.w_avg has shape {tuple(w_avg.shape)}, expected ({w_dim},)")
    config = {"size": size, "style_dim": w_dim, "n_mlp": n_mlp, "lr_mlp": lr_mlp,
              "channels": channels, "w_avg": w_avg, "conv_clamp": conv_clamp}
    return out, config


def _checked_dims(G: PersistentModule) -> tuple[int, int]:
    """(w_dim, resolution) of an unconditional RGB generator whose shape rosinality can hold."""
    need = {}
    for name in ("z_dim", "w_dim", "img_resolution", "num_ws"):
        v = G.attr(name)
        if v is None:
            raise NvidiaConversionError(f"Generator record lacks {name}")
        need[name] = int(v)
    z_dim, w_dim, size, num_ws = need["z_dim"], need["w_dim"], need["img_resolution"], need["num_ws"]
    c_dim, img_channels = int(G.attr("c_dim", 0) or 0), int(G.attr("img_channels", 3))
    if c_dim != 0:
        raise NvidiaConversionError(f"conditional generator (c_dim={c_dim}) has no rosinality equivalent")
    if z_dim != w_dim:
        raise NvidiaConversionError(f"z_dim ({z_dim}) != w_dim ({w_dim}); rosinality needs them equal")
    if img_channels != 3:
        raise NvidiaConversionError(f"img_channels={img_channels}; rosinality generators are RGB")
    log_size = int(round(math.log2(size))) if size > 0 else 0
    if size < 4 or 2 ** log_size != size:
        raise NvidiaConversionError(f"img_resolution {size} is not a power of two >= 4")
    if num_ws != 2 * log_size - 2:
        raise NvidiaConversionError(f"num_ws={num_ws}, rosinality needs {2 * log_size - 2} for {size}px")
    return w_dim, size


def _synthesis_clamp(synthesis: PersistentModule, sd: dict[str, torch.Tensor], resolutions: list[int]) -> float | None:
    """The one conv_clamp of all layers, after refusing what would render differently in rosinality."""
    clamps, fp16 = set(), []
    filt = _blur_kernel() / 4
    for r in resolutions:
        blk = synthesis.modules.get(f"b{r}")
        if not isinstance(blk, PersistentModule):
            raise NvidiaConversionError(f"synthesis network lacks block b{r}")
        if blk.attr("architecture", "skip") != "skip":
            raise NvidiaConversionError(f"block b{r} uses architecture {blk.attr('architecture')!r}; only 'skip' converts")
        if blk.attr("use_fp16", False):
            fp16.append(r)
        for layer in [blk, *(m for m in blk.modules.values() if isinstance(m, PersistentModule))]:
            clamps.add(layer.attr("conv_clamp"))
            if layer.class_name == "SynthesisLayer" and layer.attr("activation", "lrelu") != "lrelu":
                raise NvidiaConversionError(f"b{r} uses activation {layer.attr('activation')!r}, not 'lrelu'")
    for key, t in sd.items():
        if key.startswith("synthesis.") and key.endswith("resample_filter"):
            if tuple(t.shape) != (4, 4) or not torch.allclose(t.float(), filt, atol=1e-7):
                raise NvidiaConversionError(f"{key} is not the [1,3,3,1] filter rosinality uses")
    if len(clamps) > 1:
        raise NvidiaConversionError(f"layers use different conv_clamp values ({', '.join(map(repr, clamps))}); "
                                    f"only one value for all layers is supported")
    if fp16:
        warnings.warn(f"blocks {fp16} were run in fp16 by NVIDIA; the converted weights run in fp32, "
                      f"which is fine but may differ from NVIDIA's fp16 images in the last digits",
                      UserWarning, stacklevel=3)
    clamp_value = next(iter(clamps)) if clamps else None
    return float(clamp_value) if clamp_value is not None else None


class _Renamer:
    """Copies NVIDIA weights (``sd``) under rosinality's names (``out``), collecting the noise maps."""

    def __init__(self, sd: dict[str, torch.Tensor]) -> None:
        self.sd, self.out, self.noises = sd, {}, []

    def take(self, key: str) -> torch.Tensor:
        if key not in self.sd:
            raise NvidiaConversionError(f"NVIDIA generator lacks {key}")
        return _f32(self.sd[key])

    def layer(self, dst: str, src: str, res: int, up: bool) -> None:
        out, take = self.out, self.take
        out[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        if up:
            out[f"{dst}.conv.blur.kernel"] = _blur_kernel()
        out[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")
        if f"{src}.noise_strength" in self.sd:  # use_noise=True
            out[f"{dst}.noise.weight"] = take(f"{src}.noise_strength").reshape(1)
            self.noises.append(take(f"{src}.noise_const").reshape(1, 1, res, res))
        else:  # no noise at all: a zero strength reproduces that exactly
            out[f"{dst}.noise.weight"] = torch.zeros(1)
            self.noises.append(torch.zeros(1, 1, res, res))
        out[f"{dst}.activate.bias"] = take(f"{src}.bias")

    def to_rgb(self, dst: str, src: str, up: bool) -> None:
        out, take = self.out, self.take
        out[f"{dst}.bias"] = take(f"{src}.bias").reshape(1, -1, 1, 1)
        if up:
            out[f"{dst}.upsample.kernel"] = _blur_kernel()
        out[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")


def _renamed(sd: dict[str, torch.Tensor], n_mlp: int, resolutions: list[int]) -> dict[str, torch.Tensor]:
    """The rosinality state dict, in rosinality's key order."""
    rn = _Renamer(sd)
    for i in range(n_mlp):
        rn.out[f"style.{i + 1}.weight"] = rn.take(f"mapping.fc{i}.weight")
        rn.out[f"style.{i + 1}.bias"] = rn.take(f"mapping.fc{i}.bias")
    rn.out["input.input"] = rn.take("synthesis.b4.const").unsqueeze(0)
    rn.layer("conv1", "synthesis.b4.conv1", 4, up=False)
    rn.to_rgb("to_rgb1", "synthesis.b4.torgb", up=False)
    for k, r in enumerate(resolutions[1:]):
        rn.layer(f"convs.{2 * k}", f"synthesis.b{r}.conv0", r, up=True)
        rn.layer(f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1", r, up=False)
    for k, r in enumerate(resolutions[1:]):
        rn.to_rgb(f"to_rgbs.{k}", f"synthesis.b{r}.torgb", up=True)
    for j, n in enumerate(rn.noises):
        rn.out[f"noises.noise_{j}"] = n
    return rn.out
