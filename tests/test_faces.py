"""Face alignment, paste-back and identity on a real photograph: scikit-image's public-domain astronaut.

Tests that need dlib (the ``[faces]`` extra) skip without it; CI installs it.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from optinv import faces
from optinv.errors import OptinvError
from optinv.faces import align as A
from optinv.faces import backend
from optinv.faces import paste as P

needs_dlib = pytest.mark.skipif(not backend.available(), reason="the [faces] extra (dlib-bin, face-recognition-models) is not installed")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(data.astronaut())


def _eye_centres(landmarks) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=float) + 0.5  # pixel centres → edges
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])


def test_missing_dlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib → ImportError
    with pytest.raises(backend.FacesUnavailable, match=r'pip install "optinv\[faces\]".*dlib-bin face-recognition-models'):
        backend.dlib()


def test_quad_follows_the_recipe():
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48] = (40.0, 50.0), (80.0, 50.0)  # eyes 40 apart, level
    lm[48], lm[54] = (45.0, 90.0), (75.0, 90.0)          # mouth 40 below the eyes
    quad, side = A.ffhq_quad(lm - 0.5)
    # x = max(2·40, 1.8·40) = 80 along the eye line; centre 0.1·eye-to-mouth below the eyes
    assert side == pytest.approx(160)
    assert np.allclose(quad, [[-20, -26], [-20, 134], [140, 134], [140, -26]])


@needs_dlib
def test_align_puts_the_eyes_where_the_recipe_does(astronaut):
    from optinv.faces.landmarks import detect

    n = 256
    al = faces.align_photo(astronaut, n, name="astronaut.png")
    assert al.image.size == (n, n) and al.transform.faces_found == 1 and al.notes == []
    expected = al.transform.from_photo(_eye_centres(al.transform.landmarks)) * n  # the recipe's prediction
    found = detect(np.asarray(al.image))
    assert len(found) == 1
    measured = _eye_centres(found[0].landmarks)
    assert np.abs(measured - expected).max() < 0.02 * n
    assert abs(measured[:, 0].mean() / n - 0.5) < 0.02  # a frontal face: eyes centred, level
    assert abs(measured[0, 1] - measured[1, 1]) < 0.02 * n


@needs_dlib
def test_align_then_paste_reproduces_the_photo(astronaut, tmp_path):
    from optinv.faces.landmarks import detect

    al = faces.align_photo(astronaut, 512, name="astronaut.png")
    t = A.load_transform(A.save_transform(al.transform, tmp_path / "a.align.json"))
    assert t == al.transform
    back = np.asarray(faces.paste_back(al.image, astronaut, t), dtype=int)
    photo = np.asarray(astronaut, dtype=int)
    left, top, right, bottom = detect(photo.astype(np.uint8))[0].box
    assert np.abs(back - photo)[top:bottom, left:right].max() <= 2  # inside the face: within 2/255
    yy, xx = np.mgrid[0:photo.shape[0], 0:photo.shape[1]] + 0.5
    outside = P.paste_mask(t.from_photo(np.stack([xx, yy], -1))) == 0
    assert 0.5 < outside.mean() < 1
    assert np.array_equal(back[outside], photo[outside])  # outside: the photo, bit for bit


@needs_dlib
def test_paste_changes_only_the_face_region(astronaut):
    al = faces.align_photo(astronaut, 64, name="astronaut.png")
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    out = np.asarray(faces.paste_back(grey, astronaut, al.transform), dtype=int)
    photo = np.asarray(astronaut, dtype=int)
    changed = np.abs(out - photo).max(-1) > 0
    left, top, right, bottom = P.region(al.transform)
    assert changed[top:bottom, left:right].mean() > 0.5
    changed[top:bottom, left:right] = False
    assert not changed.any()
    centre = al.transform.to_photo(np.array([0.5, 0.5])).astype(int)
    assert np.all(out[centre[1], centre[0]] == 128)  # the middle of the crop is the pasted result
    with pytest.raises(OptinvError, match="photo that was aligned"):
        faces.paste_back(grey, astronaut.resize((256, 256)), al.transform)


@needs_dlib
def test_no_face_names_the_file_and_what_to_try():
    from optinv.faces.landmarks import NoFaceFound

    with pytest.raises(NoFaceFound, match=r"^blank\.png: no face found \(try"):
        faces.align_photo(Image.new("RGB", (256, 256), (200, 180, 160)), 64, name="blank.png")


@needs_dlib
def test_two_faces_largest_by_default_and_face_picks(astronaut):
    w = astronaut.width
    two = Image.new("RGB", (w * 2, astronaut.height))
    two.paste(astronaut, (0, 0))
    two.paste(astronaut.resize((w * 3 // 4, astronaut.height * 3 // 4), Image.LANCZOS), (w, 0))
    first = faces.align_photo(two, 64, name="two.png")
    assert first.transform.faces_found == 2 and first.transform.face == 1
    assert any("2 faces found, using face 1 (the largest); `face` 1..2" in n for n in first.notes)
    assert np.asarray(first.transform.quad)[:, 0].mean() < w  # the larger face is on the left
    second = faces.align_photo(two, 64, face=2, name="two.png")
    assert np.asarray(second.transform.quad)[:, 0].mean() > w
    with pytest.raises(OptinvError, match="`face` 3, but 2 faces found"):
        faces.align_photo(two, 64, face=3, name="two.png")


@needs_dlib
def test_identity_distance_same_and_different_people(astronaut):
    from optinv.faces.identity import SAME_PERSON, distance

    data = pytest.importorskip("skimage.data")
    a = faces.align_photo(astronaut, 256).image
    b = faces.align_photo(astronaut.resize((300, 300), Image.LANCZOS), 64).image  # same face, other scale
    other = Image.fromarray((data.lfw_subset()[0] * 255).astype(np.uint8)).convert("RGB")
    assert distance(a, a) < 1e-6
    assert distance(a, b) < SAME_PERSON
    assert distance(a, other) > SAME_PERSON


@needs_dlib
def test_own_landmark_model(astronaut, tmp_path):
    own = backend.model_file(backend.LANDMARKS_68)  # a user's own 68-point file: same result as the default
    a = faces.align_photo(astronaut, 64, landmarks_model=str(own))
    b = faces.align_photo(astronaut, 64)
    assert np.allclose(a.transform.quad, b.transform.quad)
    with pytest.raises(OptinvError, match="5 points; face alignment needs a 68-point model"):
        faces.align_photo(astronaut, 64, landmarks_model=str(backend.model_file("shape_predictor_5_face_landmarks.dat")))
    (tmp_path / "junk.dat").write_bytes(b"not a model")
    with pytest.raises(OptinvError, match="not a dlib shape predictor"):
        faces.align_photo(astronaut, 64, landmarks_model=str(tmp_path / "junk.dat"))
    with pytest.raises(OptinvError, match="`landmarks` .*no such file"):
        faces.align_photo(astronaut, 64, landmarks_model=str(tmp_path / "missing.dat"))


@needs_dlib
def test_large_photo_is_searched_small_and_landmarked_full_size(astronaut):
    big = Image.new("RGB", (2600, 1800), (128, 128, 128))
    big.paste(astronaut.resize((1536, 1536), Image.BICUBIC), (500, 100))
    al = faces.align_photo(big, 64)
    small = faces.align_photo(astronaut, 64)
    expected = (np.asarray(small.transform.quad) * 3 + [500, 100])  # the same face, 3× larger, moved
    assert np.abs(np.asarray(al.transform.quad) - expected).max() < 0.02 * 3 * 176
