"""Face identity distance with dlib's ResNet descriptor (128-D; < 0.6 means "same person").

Results of a 64×64 model are far below the detector's ~80-pixel minimum, so images are
enlarged to at least 256 pixels first; an aligned crop whose face the detector still misses
is described from the box where the FFHQ recipe puts the face.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from optinv.errors import OptinvError
from optinv.faces import backend

SAME_PERSON = 0.6
MIN_SIDE = 256
# Where the FFHQ recipe puts the face in an aligned crop (fractions of its side): left, top, right, bottom.
ALIGNED_FACE_BOX = (0.2, 0.25, 0.8, 0.85)


def descriptor(image: Image.Image, aligned: bool = True) -> np.ndarray:
    """The 128-D descriptor of the largest face in ``image`` (an aligned crop: the recipe's box as fallback)."""
    d = backend.dlib()
    im = image.convert("RGB")
    if min(im.size) < MIN_SIDE:
        k = MIN_SIDE / min(im.size)
        im = im.resize((round(im.width * k), round(im.height * k)), Image.BICUBIC)
    arr = np.ascontiguousarray(np.asarray(im))
    found, scores, _ = backend.detector().run(arr, 0, 0.0)
    if len(found):
        rect = max(zip(found, scores), key=lambda rs: (rs[0].area(), rs[1]))[0]
    elif aligned:
        w, h = im.size
        b = ALIGNED_FACE_BOX
        rect = d.rectangle(round(b[0] * w), round(b[1] * h), round(b[2] * w), round(b[3] * h))
    else:
        raise OptinvError("no face found to measure identity on")
    shape = backend.shape_predictor(None)(arr, rect)
    return np.asarray(backend.face_descriptor_model().compute_face_descriptor(arr, shape), dtype=np.float64)


def distance(a: Image.Image, b: Image.Image, aligned: bool = True) -> float:
    """Euclidean distance between the two faces' descriptors (dlib's threshold: < 0.6 = same person)."""
    return float(np.linalg.norm(descriptor(a, aligned) - descriptor(b, aligned)))


def face_found(image: Image.Image) -> bool:
    """Does the detector find a face (enlarged as for :func:`descriptor`; the landmarks' score floor)?"""
    from optinv.faces.landmarks import MIN_SCORE, _boxes

    im = image.convert("RGB")
    if min(im.size) < MIN_SIDE:
        k = MIN_SIDE / min(im.size)
        im = im.resize((round(im.width * k), round(im.height * k)), Image.BICUBIC)
    return bool(_boxes(np.ascontiguousarray(np.asarray(im)), MIN_SCORE))
