"""Read NVIDIA stylegan2-ada-pytorch training pickles without running any code stored in them.

NVIDIA's snapshots (``{training_set_kwargs, G, D, G_ema, augment_pipe}``) reduce every network
module to ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` carries
the module's Python source (``module_src``) that NVIDIA's loader ``exec()``s. A plain
``pickle.load`` therefore runs whatever source the file contains. Here an allowlisting
unpickler turns each such record into an inert :class:`PersistentModule` (the source is kept as
a string and never executed), tensors are rebuilt through ``torch.load(weights_only=True)``, and
every other global is refused with :class:`UnsafePickleError`.

Renaming the generator's weights into rosinality's layout is :mod:`optinv.io.nvidia_convert`'s job.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
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
