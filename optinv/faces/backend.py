"""dlib and its model files, imported only when a face is actually needed (the ``[faces]`` extra).

The model files come from the ``face-recognition-models`` package. Its ``__init__`` imports
``pkg_resources``, which recent setuptools no longer ships, so we locate the package folder
with ``importlib.util.find_spec`` (no code from the package runs) and read the files from there.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

from optinv.errors import OptinvError
from optinv.io.fileio import first_line

INSTALL_HINT = 'pip install "optinv[faces]" (or: pip install dlib-bin face-recognition-models)'
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
FACE_DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"


class FacesUnavailable(OptinvError):
    """dlib or its model files are not installed."""


def dlib() -> Any:
    """The dlib module, or one line that says exactly what to install."""
    try:
        import dlib as _dlib
    except ImportError:
        raise FacesUnavailable(f"face alignment and identity need dlib and its models: {INSTALL_HINT}") from None
    return _dlib


def models_dir() -> Path:
    """The ``models`` folder of the installed ``face-recognition-models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacesUnavailable(f"the face landmark models are not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_file(name: str) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise FacesUnavailable(f"{path} is missing (a broken face-recognition-models install?): "
                               f"pip install --force-reinstall face-recognition-models")
    return path


@functools.lru_cache(maxsize=1)
def detector() -> Any:
    """dlib's HOG frontal face detector (built into dlib, no file)."""
    return dlib().get_frontal_face_detector()


@functools.lru_cache(maxsize=4)
def shape_predictor(path: str | None = None) -> Any:
    """A 68-point shape predictor: the user's file, or the one from face-recognition-models."""
    d = dlib()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise OptinvError(f"`landmarks` {p}: no such file (a dlib shape predictor .dat with 68 points)")
    else:
        p = model_file(LANDMARKS_68)
    try:
        return d.shape_predictor(os.fspath(p))
    except RuntimeError as e:
        raise OptinvError(f"{p}: not a dlib shape predictor ({first_line(e, 120)})") from None


@functools.lru_cache(maxsize=1)
def face_descriptor_model() -> Any:
    """dlib's ResNet face descriptor (128-D; Euclidean distance < 0.6 means "same person")."""
    return dlib().face_recognition_model_v1(os.fspath(model_file(FACE_DESCRIPTOR)))


def available() -> bool:
    """True when dlib and the model files are installed (tests skip on False)."""
    try:
        dlib()
        model_file(LANDMARKS_68)
        return True
    except FacesUnavailable:
        return False
