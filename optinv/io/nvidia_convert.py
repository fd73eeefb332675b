"""NVIDIA's ``G_ema`` (read inertly by :mod:`optinv.io.nvidia_unpickler`) renamed into the rosinality
``stylegan2-pytorch`` Generator layout that :mod:`optinv.engine.generator` loads: shapes checked,
the mapping's learning-rate multiplier and the synthesis clamp carried over. The inverse (for
fixtures and round trips) is :mod:`optinv.world.nvidia_writer`.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import torch

from optinv.io.nvidia_unpickler import (NvidiaConversionError, NvidiaPickleFormatError, PathLike, PersistentModule,
                                        module_state_dict, read_nvidia_pickle)


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
