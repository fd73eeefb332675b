"""Load generators from optinv, rosinality and NVIDIA files; save optinv's own format.

Every ``torch.load`` here uses ``weights_only=True``; NVIDIA pickles go through the restricted
unpickler of :mod:`optinv.io.nvidia_unpickler`, which never runs code stored in the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from optinv.errors import CheckpointError
from optinv.io.fileio import atomic_torch_save, first_line, load_error, name_part
from optinv.engine.generator import Generator

FORMAT_TAG = "optinv-generator"
FORMATS_UNDERSTOOD = ("optinv .pt (optinv convert)", "rosinality stylegan2-pytorch .pt ({'g_ema', 'latent_avg'})",
                      "NVIDIA stylegan2-ada-pytorch .pkl (G_ema)")


def samples_dir(checkout: Path | None = None, prefixes: list[str] | None = None) -> Path:
    """The shipped samples (models, images): the source checkout's ``samples/``, else where
    ``pip install .`` put them (``<prefix>/share/optinv/samples``, from setup.cfg's data_files)."""
    import site
    import sys
    import sysconfig

    checkout = checkout or Path(__file__).resolve().parents[2] / "samples"
    if prefixes is None:
        prefixes = [sysconfig.get_path("data"), sys.prefix, getattr(site, "USER_BASE", None) or ""]
    for cand in [checkout] + [Path(p) / "share" / "optinv" / "samples" for p in prefixes if p]:
        if (cand / "models").is_dir():
            return cand
    return checkout


SAMPLES_MODELS = samples_dir() / "models"
DEFAULT_MODEL = "synthfaces256"


def card_name(g: Generator, default: str = "model") -> str:
    """The model card's ``name`` as a file-name part, never a path: a card is part of a file anyone
    can hand over, so a name like ``/some/where`` or ``../x`` must not decide where files go."""
    raw = g.card.get("name") if isinstance(getattr(g, "card", None), dict) else ""
    return name_part(raw, default)


def _understood() -> str:
    return "; ".join(FORMATS_UNDERSTOOD)


def resolve_model_path(path_or_name: str | os.PathLike | None) -> Path:
    """A path, or the name of a model shipped in samples/models (default: the embedded model)."""
    if path_or_name is None or str(path_or_name) in ("", "default"):
        path_or_name = DEFAULT_MODEL
    p = Path(path_or_name)
    if p.exists():
        return p
    for cand in (SAMPLES_MODELS / f"{p.name}.pt", SAMPLES_MODELS / p.name):
        if "/" not in str(path_or_name) and cand.exists():
            return cand
    raise CheckpointError(f"model not found: {path_or_name} (give a file path, or one of: "
                          f"{', '.join(sorted(x.stem for x in SAMPLES_MODELS.glob('*.pt') if not x.stem.startswith('enc')) ) or 'none shipped'})")


def infer_rosinality_config(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Read size, style_dim, n_mlp and per-resolution channels off the weight shapes."""
    try:
        style_dim = sd["style.1.weight"].shape[1]
        n_mlp = max(int(m.group(1)) for k in sd if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
        n_rgbs = max((int(m.group(1)) + 1 for k in sd if (m := re.fullmatch(r"to_rgbs\.(\d+)\.bias", k))), default=0)
        size = 2 ** (n_rgbs + 2)
        channels = {4: sd["input.input"].shape[1]}
        for k in range(n_rgbs):
            channels[2 ** (k + 3)] = sd[f"convs.{2 * k}.conv.weight"].shape[1]
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"state dict does not look like a StyleGAN2 generator (missing {e})") from None
    return {"size": size, "style_dim": int(style_dim), "n_mlp": n_mlp, "lr_mlp": 0.01,
            "channels": {int(r): int(c) for r, c in channels.items()}}


def build_generator(config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> Generator:
    """Instantiate from a config and load the weights strictly (as float32)."""
    channels = {int(r): int(c) for r, c in config["channels"].items()}
    g = Generator(int(config["size"]), int(config["style_dim"]), int(config["n_mlp"]),
                  channels=channels, lr_mlp=float(config.get("lr_mlp", 0.01)),
                  conv_clamp=config.get("conv_clamp"))
    sd = {k: v.float() for k, v in state_dict.items()}
    missing_blur = {k: v for k, v in g.state_dict().items() if k.endswith(("blur.kernel", "upsample.kernel"))}
    for k, v in missing_blur.items():  # fixed FIR buffers: some writers omit them
        sd.setdefault(k, v)
    try:
        g.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = first_line(e, limit=None)
        raise CheckpointError(f"weights do not fit the generator config: {first}") from None
    return g.eval().requires_grad_(False)


def _card(g: Generator, source_format: str, path: Path, extra: dict | None = None) -> dict[str, Any]:
    card = {
        "name": path.stem, "source_format": source_format, "source_file": str(path),
        "resolution": g.size, "n_latent": g.n_latent, "style_dim": g.style_dim, "n_mlp": g.n_mlp,
        "lr_mlp": g.lr_mlp, "channels": {str(r): c for r, c in g.channels.items()},
        "parameters": sum(p.numel() for p in g.parameters()),
    }
    card.update(extra or {})
    return card


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"cannot read {path}: {load_error(e, path=path)}. Understood formats: {_understood()}") from None


def load_generator(path_or_name: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   w_avg_samples: int = 10000) -> Generator:
    """Load any understood generator file; the result carries ``.card`` and ``.w_avg``."""
    path = resolve_model_path(path_or_name)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a model file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty. Understood formats: {_understood()}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"cannot read {path}: a damaged or truncated torch file (its zip directory is "
                                  f"missing); copy or download it again")
        g = _load_torch_file(path, _torch_load(path))
    elif head[:1] == b"\x80":
        g = _load_pickle_file(path)
    else:
        raise CheckpointError(f"{path} is not a model file (neither a torch zip nor a pickle). "
                              f"Understood formats: {_understood()}")
    g.card["source_file"] = str(path)  # encoders/directions named in the card are relative to it
    if not torch.isfinite(g.w_avg).all() or float(g.w_avg.abs().sum()) == 0.0:
        g.w_avg.copy_(g.mean_latent(w_avg_samples))
        g.card["w_avg_source"] = f"mean of mapping over {w_avg_samples} z (seed 0)"
    for name, t in g.state_dict().items():
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: weight {name} contains NaN or Inf")
    return g.to(device)


def _load_torch_file(path: Path, obj: Any) -> Generator:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a generator. Understood formats: {_understood()}")
    if obj.get("format") == FORMAT_TAG:
        return _load_tagged_generator(path, obj)
    if isinstance(obj.get("format"), str) and obj["format"].startswith("optinv-"):  # a latent, encoder, directions…
        kind = obj["format"][len("optinv-"):]
        raise CheckpointError(f"{path} is an optinv {kind} file, not a generator: give it where a {kind} is "
                              f"expected, and a model file to `model`")
    if "g_ema" in obj:
        sd = obj["g_ema"]
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: 'g_ema' holds a {type(sd).__name__}, not a state dict")
        try:
            config = infer_rosinality_config(sd)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        g = build_generator(config, sd)
        if isinstance(obj.get("latent_avg"), torch.Tensor):
            g.w_avg.copy_(obj["latent_avg"].float().reshape(-1)[: g.style_dim])
        g.card = _card(g, "rosinality", path, {"lr_mlp_note": "assumed 0.01 (rosinality default)"})
        return g
    if "state_dict" in obj and "config" in obj:
        raise CheckpointError(f"{path} looks like a training checkpoint; export it with "
                              f"scripts/train_generator.py --export or optinv convert")
    raise CheckpointError(f"{path}: unknown checkpoint layout (keys: {', '.join(map(str, list(obj)[:8]))}). "
                          f"Understood formats: {_understood()}")


def _load_tagged_generator(path: Path, obj: dict[str, Any]) -> Generator:
    """optinv's own file; a damaged one (keys, shapes or dtypes wrong) is one clear error."""
    try:
        config, sd = obj["config"], obj["state_dict"]
        if not isinstance(config, dict) or not isinstance(sd, dict):
            raise TypeError("'config' and 'state_dict' must be dicts")
        bad = [k for k, v in sd.items() if not (isinstance(v, torch.Tensor) and v.is_floating_point())]
        if bad:
            raise TypeError(f"weight {bad[0]} is not a floating-point tensor")
        g = build_generator(config, sd)
        card = obj.get("card", {})
        g.card = dict(card) if isinstance(card, dict) else {}
        g.card.setdefault("source_format", "optinv")
        if "w_avg" in obj:
            w_avg = obj["w_avg"]
            if not isinstance(w_avg, torch.Tensor) or w_avg.numel() != g.style_dim:
                raise TypeError(f"'w_avg' is not a tensor of {g.style_dim} numbers")
            g.w_avg.copy_(w_avg.float().reshape(-1))
    except CheckpointError as e:
        raise CheckpointError(f"{path}: damaged optinv model file: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else first_line(e)
        raise CheckpointError(f"{path}: damaged optinv model file ({what}); write it again with optinv convert") from None
    return g


def _load_pickle_file(path: Path) -> Generator:
    from optinv.io.nvidia_convert import nvidia_generator_to_rosinality

    try:
        sd, config = nvidia_generator_to_rosinality(path)
    except CheckpointError:
        raise
    except ValueError as e:
        raise CheckpointError(f"cannot read {path}: {e}. Understood formats: {_understood()}") from None
    g = build_generator(config, sd)
    if config.get("w_avg") is not None:
        g.w_avg.copy_(config["w_avg"].float())
    g.card = _card(g, "nvidia-stylegan2-ada", path)
    return g


def save_generator(g: Generator, path: str | os.PathLike, card: dict | None = None, half: bool = False) -> Path:
    """Write optinv's format (state dict + config + card + w_avg), atomically."""
    path = Path(path)
    card = dict(card if card is not None else g.card)
    card.update({"resolution": g.size, "n_latent": g.n_latent, "style_dim": g.style_dim, "n_mlp": g.n_mlp,
                 "lr_mlp": g.lr_mlp, "channels": {str(r): c for r, c in g.channels.items()},
                 "conv_clamp": g.conv_clamp, "parameters": sum(p.numel() for p in g.parameters())})
    card.pop("source_file", None)
    sd = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in g.state_dict().items()}
    obj = {"format": FORMAT_TAG, "version": 1, "config": g.config(), "card": card,
           "state_dict": sd, "w_avg": g.w_avg.detach().cpu().float()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise CheckpointError(f"cannot write {path}: {path.parent} cannot be made a folder (a file is in the way, "
                              f"or it is not writable)") from None
    return atomic_torch_save(obj, path)


def save_rosinality(g: Generator, path: str | os.PathLike) -> Path:
    """Write rosinality's layout ({'g_ema', 'latent_avg'}) so their tools can read our models."""
    return atomic_torch_save({"g_ema": {k: v.cpu() for k, v in g.state_dict().items()}, "latent_avg": g.w_avg.cpu()}, path)


def model_id(g: Generator) -> str:
    """Short content hash of the weights: names the model a latent or a direction belongs to."""
    h = hashlib.sha1()
    for k, v in sorted(g.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:12]


def describe(g: Generator) -> str:
    """Human-readable model card, one key per line."""
    card = dict(g.card)
    lines = [f"{k}: {v}" for k, v in card.items() if k not in ("default_recipes",)]
    for job, recipe in card.get("default_recipes", {}).items():
        lines.append(f"default recipe ({job}): {recipe}")
    return "\n".join(lines)
