"""Procedural, seeded portrait renderer used as StyleGAN2 training data.

Why it exists: the project needs a face-like data set that is free, small,
fully reproducible and labelled, so that the inversion engine can be trained
and tested without downloading anything. Every picture is a pure function of
a point ``u`` in the unit cube ``[0, 1]^N_PARAMS``; a training script can
therefore map a Gaussian ``z`` through the normal CDF and get a picture whose
attributes vary smoothly with ``z``.

Rendering works in a *canonical face frame* (x right, y down, the image
spanning ``[-1, 1]`` when the pose is neutral). The pixel grid is mapped into
that frame once per render (translation, scale, in-plane tilt), so every part
of the face follows the same pose. Each part is a signed distance field that
is turned into coverage with ``clip(0.5 - d / pixel)`` and alpha-composited;
the picture is drawn ``supersample`` times larger and box-downscaled, which
antialiases every edge. Parts are evaluated only inside their bounding box to
keep a 64 px render within a few milliseconds.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "N_PARAMS",
    "PARAM_NAMES",
    "MASK_NAMES",
    "params_from_uniform",
    "params_from_seed",
    "render_params",
    "labels_from_params",
    "render",
]

# One name per coordinate of u; every coordinate changes the picture.
PARAM_NAMES: tuple[str, ...] = (
    "bg_hue",
    "bg_hue_shift",
    "bg_sat",
    "bg_val",
    "bg_contrast",
    "vignette",
    "skin_tone",
    "skin_warmth",
    "face_width",
    "face_height",
    "jaw",
    "hair_tone",
    "hair_dye",  # < 0.15: dyed (hue from the rest); else natural sheen strength
    "hair_length",
    "hair_volume",
    "bangs",  # < 0.4: fringe (depth from the rest); else side parting offset
    "eye_color",
    "eye_size",
    "eye_spacing",
    "eye_height",
    "brow_thickness",
    "brow_tilt",
    "nose_length",
    "smile",
    "mouth_width",
    "lip_tone",
    "glasses",  # < 0.25: glasses (frame colour/shape from the rest); else eye-lid shade
    "ear_size",
    "neck_width",
    "clothing_hue",
    "clothing_sat",
    "clothing_val",
    "blush",
    "pose_dx",
    "pose_dy",
    "pose_scale",
    "pose_tilt",
    "light_angle",
    "light_strength",
)
N_PARAMS: int = len(PARAM_NAMES)

MASK_NAMES: tuple[str, ...] = (
    "background",
    "clothing",
    "hair",
    "skin",
    "eyes",
    "brows",
    "mouth",
    "glasses",
)

DYED_PROB = 0.15
BANGS_PROB = 0.4
GLASSES_PROB = 0.25

# Natural colour ramps: (position along u, name, rgb 0..1). Interpolating
# between anchors keeps the map continuous; the label is the nearest anchor.
_SKIN_RAMP = np.array(
    [
        [255, 226, 204],
        [243, 200, 168],
        [226, 174, 136],
        [198, 138, 100],
        [160, 104, 70],
        [118, 74, 48],
        [78, 50, 34],
    ],
    dtype=np.float64,
) / 255.0

_HAIR_RAMP: tuple[tuple[float, str, tuple[int, int, int]], ...] = (
    (0.00, "black", (22, 19, 19)),
    (0.22, "dark_brown", (58, 38, 28)),
    (0.44, "brown", (112, 74, 44)),
    (0.62, "auburn", (150, 66, 34)),
    (0.80, "blonde", (222, 186, 118)),
    (1.00, "grey", (190, 188, 184)),
)

# Dyed colours are spread along one hue path so u maps continuously.
_DYE_HUES: tuple[tuple[float, str], ...] = (
    (140.0, "green"),
    (215.0, "blue"),
    (275.0, "purple"),
    (330.0, "pink"),
)

_EYE_RAMP: tuple[tuple[float, str, tuple[int, int, int]], ...] = (
    (0.00, "brown", (92, 52, 28)),
    (0.30, "hazel", (138, 104, 48)),
    (0.55, "green", (74, 128, 72)),
    (0.80, "blue", (62, 118, 196)),
    (1.00, "grey", (128, 140, 152)),
)


def _lerp(a: float, b: float, t: float) -> float:
    return float(a + (b - a) * t)


def _ramp(u: float, ramp: tuple[tuple[float, str, tuple[int, int, int]], ...]) -> tuple[list[float], str]:
    """Piecewise-linear colour ramp; continuous in u, named by the nearest anchor."""
    pos = [p for p, _, _ in ramp]
    cols = np.array([c for _, _, c in ramp], dtype=np.float64) / 255.0
    rgb = [float(np.interp(u, pos, cols[:, k])) for k in range(3)]
    name = ramp[int(np.argmin([abs(u - p) for p in pos]))][1]
    return rgb, name


def _hsv(h: float, s: float, v: float) -> list[float]:
    return [float(c) for c in colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))]


def _skin(tone: float, warmth: float) -> list[float]:
    """Skin colour from a light->dark tone plus a small warm/olive undertone."""
    x = tone * (len(_SKIN_RAMP) - 1)
    rgb = np.array([np.interp(x, np.arange(len(_SKIN_RAMP)), _SKIN_RAMP[:, k]) for k in range(3)])
    shift = (warmth - 0.5) * 0.08
    rgb = rgb + np.array([shift, 0.0, -shift]) * (0.6 + 0.4 * rgb.mean())
    return [float(c) for c in np.clip(rgb, 0.0, 1.0)]


def _dyed(t: float) -> tuple[list[float], str]:
    """Vivid dyed colour along green->blue->purple->pink, continuous in t."""
    hue = _lerp(_DYE_HUES[0][0], _DYE_HUES[-1][0], t)
    name = min(_DYE_HUES, key=lambda hn: abs(hn[0] - hue))[1]
    return _hsv(hue / 360.0, 0.62, 0.78), name


def _hair(u_tone: float, u_dye: float) -> dict[str, Any]:
    """Hair colour: natural ramp, or (rarely) dyed; the dye entry also sets sheen."""
    if u_dye < DYED_PROB:
        rgb, name = _dyed(u_dye / DYED_PROB)
        # The natural tone still darkens/lightens dyed hair a little.
        rgb = [float(c * (0.8 + 0.35 * u_tone)) for c in rgb]
        return {"hair_rgb": [min(c, 1.0) for c in rgb], "hair_color": name, "hair_dyed": True, "hair_shine": 0.35}
    rgb, name = _ramp(u_tone, _HAIR_RAMP)
    shine = 0.1 + 0.35 * (u_dye - DYED_PROB) / (1.0 - DYED_PROB)
    return {"hair_rgb": rgb, "hair_color": name, "hair_dyed": False, "hair_shine": float(shine)}


def _glasses(u: float) -> dict[str, Any]:
    """Glasses flag; inside the flag the entry picks frame colour and roundness.

    Without glasses the same entry shades the eyelids, so no coordinate is dead.
    """
    if u >= GLASSES_PROB:
        return {"glasses": False, "frame_rgb": [0.1, 0.1, 0.1], "frame_round": 2.0,
                "lid_shade": float((u - GLASSES_PROB) / (1.0 - GLASSES_PROB))}
    t = u / GLASSES_PROB
    if t < 0.5:  # black -> tortoise brown
        rgb = [_lerp(0.06, 0.36, 2 * t), _lerp(0.06, 0.2, 2 * t), _lerp(0.07, 0.1, 2 * t)]
    else:  # saturated coloured frame
        rgb = _hsv(2 * t - 1.0, 0.75, 0.7)
    tri = abs(2.0 * ((2.0 * t) % 1.0) - 1.0)  # continuous triangle wave
    return {"glasses": True, "frame_rgb": rgb, "frame_round": float(2.0 + 2.5 * tri), "lid_shade": 0.3}


def _background(v: dict[str, float]) -> dict[str, Any]:
    """Two gradient colours, from muted to saturated, light to dark."""
    sat = 0.04 + 0.72 * v["bg_sat"] ** 1.3
    val = 0.35 + 0.6 * v["bg_val"]
    top = _hsv(v["bg_hue"], sat, val)
    bottom = _hsv(v["bg_hue"] + (v["bg_hue_shift"] - 0.5) * 0.35, sat * 1.1, val * (0.55 + 0.6 * v["bg_contrast"]))
    return {"bg_top": top, "bg_bottom": bottom, "vignette": float(0.35 * v["vignette"])}


def params_from_uniform(u: np.ndarray) -> dict[str, Any]:
    """Turn a unit-cube vector into render parameters (plain floats/lists/bools).

    Why: a generator is trained on ``render_params(params_from_uniform(Phi(z)))``,
    so every visual degree of freedom comes from ``u``, continuous where it can be.
    """
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    if u.shape[0] != N_PARAMS:
        raise ValueError(f"expected {N_PARAMS} values, got {u.shape[0]}")
    u = np.clip(u, 0.0, 1.0)
    v = {name: float(x) for name, x in zip(PARAM_NAMES, u)}
    p: dict[str, Any] = {"u": [float(x) for x in u]}
    p.update(_background(v))
    p["skin_tone"] = v["skin_tone"]
    p["skin_rgb"] = _skin(v["skin_tone"], v["skin_warmth"])
    p["face_a"] = _lerp(0.36, 0.45, v["face_width"])
    p["face_b"] = _lerp(0.49, 0.57, v["face_height"])
    p["jaw"] = _lerp(0.12, 0.42, v["jaw"])
    p.update(_hair(v["hair_tone"], v["hair_dye"]))
    p["hair_length"] = v["hair_length"]
    p["hair_volume"] = v["hair_volume"]
    p["bangs"] = v["bangs"] < BANGS_PROB
    p["bangs_depth"] = float(v["bangs"] / BANGS_PROB) if p["bangs"] else 0.0
    p["part"] = float((v["bangs"] - BANGS_PROB) / (1 - BANGS_PROB) * 2 - 1) if not p["bangs"] else 0.0
    p["eye_rgb"], p["eye_color"] = _ramp(v["eye_color"], _EYE_RAMP)
    p["eye_size"] = _lerp(0.074, 0.1, v["eye_size"])
    p["eye_spacing"] = _lerp(0.37, 0.47, v["eye_spacing"])
    p["eye_y"] = _lerp(-0.03, 0.05, v["eye_height"])
    p["brow_thickness"] = _lerp(0.012, 0.028, v["brow_thickness"])
    p["brow_tilt"] = _lerp(-0.035, 0.035, v["brow_tilt"])
    p["nose_length"] = _lerp(0.13, 0.21, v["nose_length"])
    p["smile"] = 2.0 * v["smile"] - 1.0
    p["mouth_width"] = _lerp(0.09, 0.15, v["mouth_width"])
    p["lip_tone"] = v["lip_tone"]
    p.update(_glasses(v["glasses"]))
    p["ear_size"] = _lerp(0.8, 1.2, v["ear_size"])
    p["neck_width"] = _lerp(0.15, 0.21, v["neck_width"])
    p["clothing_rgb"] = _hsv(v["clothing_hue"], 0.1 + 0.65 * v["clothing_sat"], 0.18 + 0.72 * v["clothing_val"])
    p["blush"] = v["blush"]
    p["dx"] = _lerp(-0.06, 0.06, v["pose_dx"])  # fraction of image size
    p["dy"] = _lerp(-0.06, 0.06, v["pose_dy"])
    p["scale"] = _lerp(0.9, 1.1, v["pose_scale"])
    p["tilt_deg"] = _lerp(-12.0, 12.0, v["pose_tilt"])
    p["light_deg"] = _lerp(-180.0, 180.0, v["light_angle"])
    p["light_strength"] = _lerp(0.15, 0.75, v["light_strength"])
    return p


def params_from_seed(seed: int) -> dict[str, Any]:
    """Parameters of picture number ``seed`` (numpy's default generator)."""
    return params_from_uniform(np.random.default_rng(seed).random(N_PARAMS))


# --------------------------------------------------------------------------
# canvas and compositing


@dataclass
class _Canvas:
    """Supersampled drawing surface plus the pose that maps it to the face frame."""

    X: np.ndarray  # canonical x of every pixel centre, float32 (S, S)
    Y: np.ndarray
    img: np.ndarray  # float32 (3, S, S) in 0..1, planar so per-channel ops stay contiguous
    masks: dict[str, np.ndarray] | None
    inv_pix: float  # canonical units -> pixels
    size: int
    fwd: tuple[float, float, float, float, float]  # dx, dy, scale, cos, sin


def _make_canvas(p: dict[str, Any], size: int, with_masks: bool) -> _Canvas:
    """Map the pixel grid into the face frame once, so every part shares the pose."""
    s = float(p["scale"])
    th = math.radians(float(p["tilt_deg"]))
    c, sn = math.cos(th), math.sin(th)
    dx, dy = 2.0 * float(p["dx"]), 2.0 * float(p["dy"])
    t = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)
    px = (t - dx)[None, :]
    py = (t - dy)[:, None]
    X = (px * (c / s) + py * (sn / s)).astype(np.float32)
    Y = (py * (c / s) - px * (sn / s)).astype(np.float32)
    masks = None
    if with_masks:
        masks = {k: np.zeros((size, size), np.float32) for k in MASK_NAMES}
        masks["background"][:] = 1.0
    img = np.empty((3, size, size), np.float32)
    return _Canvas(X, Y, img, masks, size * s / 2.0, size, (dx, dy, s, c, sn))


def _region(cv: _Canvas, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice] | None:
    """Pixel bounding box of a face-frame box, so parts are evaluated only where they can be."""
    dx, dy, s, c, sn = cv.fwd
    xs, ys = [], []
    for qx, qy in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        xs.append(dx + s * (c * qx - sn * qy))
        ys.append(dy + s * (sn * qx + c * qy))
    half = cv.size / 2.0
    c0 = max(0, int(math.floor((min(xs) + 1.0) * half)) - 1)
    c1 = min(cv.size, int(math.ceil((max(xs) + 1.0) * half)) + 1)
    r0 = max(0, int(math.floor((min(ys) + 1.0) * half)) - 1)
    r1 = min(cv.size, int(math.ceil((max(ys) + 1.0) * half)) + 1)
    if c1 <= c0 or r1 <= r0:
        return None
    return slice(r0, r1), slice(c0, c1)


def _cov(cv: _Canvas, d: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Antialiased coverage of a signed distance (negative inside)."""
    return np.clip(0.5 - d * (cv.inv_pix / soft), 0.0, 1.0)


def _paint(
    cv: _Canvas,
    sl: tuple[slice, slice],
    alpha: np.ndarray,
    color: Any,
    cls: str | None,
    shade: np.ndarray | None = None,
) -> None:
    """Composite ``color`` (times ``shade``) over the canvas; track class coverage for masks.

    ``color`` is three channel values, each a scalar or an array of the region's shape.
    """
    for c in range(3):
        view = cv.img[c][sl]
        target = color[c] if shade is None else color[c] * shade
        view += alpha * (target - view)
    if cv.masks is not None and cls is not None:
        keep = 1.0 - alpha
        for m in cv.masks.values():
            m[sl] *= keep
        cv.masks[cls][sl] += alpha


def _ellipse(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on circles)."""
    r = np.sqrt(x * x * (1.0 / (a * a)) + y * y * (1.0 / (b * b)))
    return (r - 1.0) * min(a, b)


def _rgb(c: Any, k: float = 1.0) -> np.ndarray:
    return np.clip(np.asarray(c, dtype=np.float32) * k, 0.0, 1.0)


def _light(p: dict[str, Any]) -> tuple[float, float, float]:
    """Light direction (x, y, z toward viewer); strength tilts it away from frontal."""
    a = math.radians(float(p["light_deg"]))
    s = float(p["light_strength"])
    return s * math.cos(a), s * math.sin(a), math.sqrt(max(0.0, 1.0 - s * s))


def _lambert(nx: np.ndarray, ny: np.ndarray, light: tuple[float, float, float]) -> np.ndarray:
    """Diffuse term of an ellipsoid whose projected normal is (nx, ny)."""
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    return np.clip(light[0] * nx + light[1] * ny + light[2] * nz, 0.0, 1.0)


# --------------------------------------------------------------------------
# face geometry shared by the parts


@dataclass
class _Geom:
    """Derived face-frame layout, computed once per render."""

    cy: float
    a: float
    b: float
    ey: float
    ex: float
    ew: float
    eh: float
    ny: float
    my: float
    chin: float


def _geom(p: dict[str, Any]) -> _Geom:
    cy = -0.03
    a, b = float(p["face_a"]), float(p["face_b"])
    ey = cy + float(p["eye_y"])
    ex = a * float(p["eye_spacing"])
    ew = float(p["eye_size"])
    ny = ey + float(p["nose_length"])
    chin = cy + b
    my = ny + (chin - ny) * 0.4
    return _Geom(cy, a, b, ey, ex, ew, ew * 0.62, ny, my, chin)


# --------------------------------------------------------------------------
# parts, drawn back to front


def _draw_background(cv: _Canvas, p: dict[str, Any]) -> None:
    """Vertical gradient with a separable vignette (image frame, not pose frame)."""
    n = cv.size
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    grad = _rgb(p["bg_top"]) * (1.0 - t) + _rgb(p["bg_bottom"]) * t  # (n, 3)
    r = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    w = 1.0 - float(p["vignette"]) * r * r
    for c in range(3):
        np.multiply((grad[:, c] * w)[:, None], w[None, :], out=cv.img[c])


def _draw_clothing(cv: _Canvas, p: dict[str, Any], g: _Geom, light: tuple[float, float, float]) -> None:
    """Shoulders as a wide ellipse, lit from the same side as the face."""
    cx, cyc, sa, sb = 0.0, 1.28, 1.08, 0.58
    sl = _region(cv, -sa, cyc - sb, sa, 1.6)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl]
    d = _ellipse(X - cx, Y - cyc, sa, sb)
    shade = 0.85 + 0.25 * light[0] * np.clip(X * (1.0 / sa), -1.0, 1.0) - 0.2 * np.clip(Y - 0.8, 0.0, 1.0)
    _paint(cv, sl, _cov(cv, d), _rgb(p["clothing_rgb"]), "clothing", shade)


def _back_hair_width(p: dict[str, Any], g: _Geom) -> float:
    """Cropped hair hugs the skull; longer hair gets its full volume."""
    grown = min(1.0, 0.3 + 1.4 * float(p["hair_length"]))
    return g.a + 0.025 + (0.03 + 0.1 * float(p["hair_volume"])) * grown


def _back_hair_sdf(X: np.ndarray, Y: np.ndarray, p: dict[str, Any], g: _Geom) -> tuple[np.ndarray, np.ndarray]:
    """Hair mass behind the head; its lower half stretches with hair length."""
    length = float(p["hair_length"])
    ah = _back_hair_width(p, g)
    bh = g.b + 0.05 + 0.05 * float(p["hair_volume"])
    cyh = g.cy - 0.03
    blow = bh * (0.12 + 2.1 * length)
    yy = Y - cyh
    low = np.clip(yy * (1.0 / blow), 0.0, 1.0)
    yn = np.where(yy < 0, yy * (1.0 / bh), yy * (1.0 / blow))
    # Long hair flares out a little and has wavy tips.
    xs = X * (1.0 / ah) / (1.0 + 0.22 * length * low)
    r = np.sqrt(xs * xs + yn * yn)
    d = (r - 1.0) * ah - 0.012 * length * np.cos(X * 38.0) * low
    return d, low


def _draw_back_hair(cv: _Canvas, p: dict[str, Any], g: _Geom, light: tuple[float, float, float]) -> None:
    length = float(p["hair_length"])
    ah = _back_hair_width(p, g)
    bottom = g.cy + (g.b + 0.1) * (0.12 + 2.1 * length) + 0.05
    wide = ah * (1.0 + 0.22 * length) + 0.03
    sl = _region(cv, -wide, g.cy - g.b - 0.2, wide, bottom)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl]
    d, low = _back_hair_sdf(X, Y, p, g)
    shade = 0.62 + 0.18 * light[0] * np.clip(X * (1.0 / ah), -1.0, 1.0) - 0.12 * low
    _paint(cv, sl, _cov(cv, d, 1.3), _rgb(p["hair_rgb"]), "hair", shade)


def _draw_neck(cv: _Canvas, p: dict[str, Any], g: _Geom) -> None:
    """Neck with a rounded neckline and the chin's cast shadow."""
    nw = float(p["neck_width"])
    ybot = 0.76
    sl = _region(cv, -nw, g.cy, nw, ybot + nw)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl]
    side = np.abs(X) - nw
    cap = np.sqrt(X * X + (Y - ybot) ** 2) - nw
    d = np.where(Y < ybot, side, cap)
    shade = 0.62 + 0.28 * np.clip((Y - g.chin) * 6.0, 0.0, 1.0)
    _paint(cv, sl, _cov(cv, d), _rgb(p["skin_rgb"]), "skin", shade)


def _draw_ears(cv: _Canvas, p: dict[str, Any], g: _Geom) -> None:
    es = float(p["ear_size"])
    ea, eb = 0.055 * es, 0.095 * es
    skin = _rgb(p["skin_rgb"])
    for side in (-1.0, 1.0):
        cx, cy = side * g.a * 0.96, g.ey + 0.05
        sl = _region(cv, cx - ea, cy - eb, cx + ea, cy + eb)
        if sl is None:
            continue
        X, Y = cv.X[sl] - cx, cv.Y[sl] - cy
        _paint(cv, sl, _cov(cv, _ellipse(X, Y, ea, eb)), skin * 0.88, "skin")
        inner = _ellipse(X - side * 0.012, Y, ea * 0.5, eb * 0.6)
        _paint(cv, sl, 0.45 * _cov(cv, inner, 2.0), skin * 0.62, None)


def _face_sdf(X: np.ndarray, Y: np.ndarray, g: _Geom, jaw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head ellipse whose lower half narrows towards the chin (jaw shape)."""
    yy = (Y - g.cy) * (1.0 / g.b)
    t = np.clip(yy, 0.0, 1.0)
    xx = X * (1.0 / g.a) / (1.0 - jaw * t * t)
    r = np.sqrt(xx * xx + yy * yy)
    return (r - 1.0) * g.a, xx, yy


def _draw_face(cv: _Canvas, p: dict[str, Any], g: _Geom, light: tuple[float, float, float]) -> None:
    sl = _region(cv, -g.a, g.cy - g.b, g.a, g.cy + g.b)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl]
    d, xx, yy = _face_sdf(X, Y, g, float(p["jaw"]))
    lam = _lambert(xx * 0.9, yy * 0.9, light)
    shade = 0.6 + 0.47 * lam
    _paint(cv, sl, _cov(cv, d), _rgb(p["skin_rgb"]), "skin", shade)


def _draw_blush(cv: _Canvas, p: dict[str, Any], g: _Geom) -> None:
    amount = 0.35 * float(p["blush"])
    tint = _rgb([0.86, 0.42, 0.42])
    for side in (-1.0, 1.0):
        cx, cy, ra = side * g.ex * 1.1, g.ey + 0.13, 0.075
        sl = _region(cv, cx - ra, cy - ra, cx + ra, cy + ra)
        if sl is None:
            continue
        X, Y = cv.X[sl] - cx, cv.Y[sl] - cy
        w = np.clip(1.0 - (X * X + Y * Y) * (1.0 / (ra * ra)), 0.0, 1.0)
        _paint(cv, sl, amount * w * w, tint, None)


def _draw_nose(cv: _Canvas, p: dict[str, Any], g: _Geom, light: tuple[float, float, float]) -> None:
    """A shadowed flank on the side away from the light plus a tip/nostril hint."""
    skin = _rgb(p["skin_rgb"])
    side = -1.0 if light[0] > 0 else 1.0
    h = (g.ny - g.ey) * 0.5
    cx, cy = side * 0.03, g.ey + h + 0.01
    sl = _region(cv, cx - 0.05, g.ey - 0.02, cx + 0.05, g.ny + 0.05)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl]
    flank = _ellipse(X - cx, Y - cy, 0.017, h)
    _paint(cv, sl, (0.15 + 0.35 * abs(light[0])) * _cov(cv, flank, 4.0), skin * 0.68, None)
    tip_y = g.ny + 0.012 - 9.0 * X * X
    tip = np.maximum(np.abs(Y - tip_y) - 0.007, np.abs(X) - 0.04)
    _paint(cv, sl, 0.55 * _cov(cv, tip, 1.5), skin * 0.55, None)


def _mouth_curve(X: np.ndarray, g: _Geom, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Centre line of the mouth: middle lower than corners when smiling, higher when frowning."""
    mw = float(p["mouth_width"])
    xn = X * (1.0 / mw)
    xn2 = np.minimum(xn * xn, 1.0)
    yc = g.my + float(p["smile"]) * 0.075 * (0.5 - xn2)
    return yc, xn2


def _draw_mouth(cv: _Canvas, p: dict[str, Any], g: _Geom) -> None:
    mw = float(p["mouth_width"])
    smile = float(p["smile"])
    sl = _region(cv, -mw - 0.03, g.my - 0.08, mw + 0.03, g.my + 0.1)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl]
    yc, xn2 = _mouth_curve(X, g, p)
    edge = np.abs(X) - mw
    lt = float(p["lip_tone"])
    skin = np.asarray(p["skin_rgb"], dtype=np.float64)
    lip = _rgb(skin * (0.66 - 0.1 * lt) + np.array([0.3, 0.02, 0.05]) * (0.5 + 0.6 * lt))
    thick = (0.015 + 0.012 * lt) * np.sqrt(1.0 - xn2) + 0.005
    openness = max(0.0, smile - 0.3) / 0.7 * 0.065
    if openness <= 0.0:
        d_lip = np.maximum(np.abs(Y - yc) - thick, edge)
        _paint(cv, sl, _cov(cv, d_lip), lip, "mouth")
        d_line = np.maximum(np.abs(Y - yc) - 0.004, edge + 0.006)
        _paint(cv, sl, _cov(cv, d_line), _rgb([0.3, 0.08, 0.08]), "mouth")
        return
    ylow = yc + 0.005 + openness * (1.0 - xn2)
    d_in = np.maximum(np.maximum(yc - 0.005 - Y, Y - ylow), edge + 0.004)
    _paint(cv, sl, _cov(cv, d_in - thick * 0.8), lip, "mouth")
    _paint(cv, sl, _cov(cv, d_in), _rgb([0.3, 0.08, 0.08]), "mouth")
    teeth = np.maximum(d_in, Y - (yc + openness * 0.5 * (1.0 - xn2)))
    _paint(cv, sl, _cov(cv, teeth), _rgb([0.95, 0.94, 0.9]), "mouth")


def _draw_eye(cv: _Canvas, p: dict[str, Any], g: _Geom, ex: float) -> None:
    """White, iris, pupil, catch-light and a dark upper lid line."""
    ew, eh = g.ew, g.eh
    sl = _region(cv, ex - ew * 1.3, g.ey - eh * 1.8, ex + ew * 1.3, g.ey + eh * 1.3)
    if sl is None:
        return
    X, Y = cv.X[sl] - ex, cv.Y[sl] - g.ey
    skin = _rgb(p["skin_rgb"])
    lid_col = skin * (0.85 - 0.25 * float(p["lid_shade"]))
    lid = _ellipse(X, Y + eh * 0.35, ew * 1.08, eh * 1.25)
    _paint(cv, sl, 0.6 * _cov(cv, np.maximum(lid, Y), 2.0), lid_col, None)
    white = _ellipse(X, Y, ew, eh)
    _paint(cv, sl, _cov(cv, white), _rgb([0.96, 0.95, 0.93]), "eyes")
    ri = eh * 1.0
    rr = np.sqrt(X * X + Y * Y)
    ring = 0.55 + 0.55 * np.clip(1.0 - rr * (1.0 / ri), 0.0, 1.0)
    _paint(cv, sl, _cov(cv, np.maximum(rr - ri, white)), _rgb(p["eye_rgb"]), "eyes", ring)
    _paint(cv, sl, _cov(cv, rr - ri * 0.45), _rgb([0.04, 0.03, 0.03]), "eyes")
    hl = np.sqrt((X + ri * 0.35) ** 2 + (Y + ri * 0.35) ** 2) - ri * 0.22
    _paint(cv, sl, _cov(cv, hl), _rgb([1.0, 1.0, 1.0]), "eyes")
    line = np.maximum(np.abs(white) - 0.008, Y - eh * 0.15)
    _paint(cv, sl, _cov(cv, line), _rgb([0.1, 0.07, 0.06]), "eyes")


def _brow_rgb(p: dict[str, Any]) -> np.ndarray:
    """Brows are darker than the hair; dyed hair keeps natural-looking brows."""
    hair = np.asarray(p["hair_rgb"], dtype=np.float64)
    if p["hair_dyed"]:
        return _rgb([0.2, 0.14, 0.1])
    return _rgb(hair * 0.7 + np.array([0.16, 0.11, 0.08]) * 0.3)


def _draw_brow(cv: _Canvas, p: dict[str, Any], g: _Geom, ex: float) -> None:
    bw = g.ew * 1.25
    by = g.ey - g.eh - 0.055
    sl = _region(cv, ex - bw, by - 0.07, ex + bw, by + 0.05)
    if sl is None:
        return
    X, Y = cv.X[sl] - ex, cv.Y[sl]
    inward = -1.0 if ex > 0 else 1.0  # +1 points to the nose
    xr = np.clip(X * (1.0 / bw), -1.0, 1.0)
    yb = by - 0.025 * (1.0 - xr * xr) - float(p["brow_tilt"]) * xr * inward
    thick = float(p["brow_thickness"]) * (0.75 + 0.35 * xr * inward)
    d = np.maximum(np.abs(Y - yb) - thick, np.abs(X) - bw)
    _paint(cv, sl, _cov(cv, d, 1.3), _brow_rgb(p), "brows")


def _hairline(X: np.ndarray, p: dict[str, Any], g: _Geom) -> np.ndarray:
    """Lower edge of the front hair: a fringe or a parted hairline."""
    xn = X * (1.0 / g.a)
    if p["bangs"]:
        depth = float(p["bangs_depth"])
        base = g.cy - g.b * (0.62 - 0.3 * (0.3 + 0.7 * depth))
        fringe = 0.012 * np.abs(np.sin(X * 34.0))
        return base + g.b * 0.35 * (xn * xn) ** 2 + fringe
    part = 0.35 * float(p["part"])
    xp = xn - part
    return g.cy - g.b * 0.6 + g.b * 0.55 * np.minimum(xp * xp, 1.2)


def _draw_cap(cv: _Canvas, p: dict[str, Any], g: _Geom, light: tuple[float, float, float]) -> None:
    """Hair over the top of the head, with a soft highlight band."""
    vol = float(p["hair_volume"])
    ca = g.a * 1.04 + 0.02 + 0.05 * vol
    cb = g.b * 1.02 + 0.04 + 0.04 * vol
    ccy = g.cy - 0.02
    sl = _region(cv, -ca, ccy - cb, ca, g.ey + 0.05)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl] - ccy
    d = np.maximum(_ellipse(X, Y, ca, cb), (Y + ccy) - _hairline(X, p, g))
    xn, yn = X * (1.0 / ca), Y * (1.0 / cb)
    lam = _lambert(xn, yn, light)
    r = np.sqrt(xn * xn + yn * yn)
    sheen = np.clip(1.0 - np.abs(r - 0.72) * 4.5, 0.0, 1.0) * np.clip(-yn * 1.5, 0.0, 1.0)
    hair = _rgb(p["hair_rgb"])
    shade = 0.55 + 0.5 * lam
    mix = (0.7 * float(p["hair_shine"])) * sheen
    keep = shade * (1.0 - mix)
    col = [h * keep + mix * (h * 0.55 + 0.4) for h in hair]
    _paint(cv, sl, _cov(cv, d, 1.3), col, "hair")


def _draw_glasses(cv: _Canvas, p: dict[str, Any], g: _Geom) -> None:
    """Two rims, a bridge and the temple arms, in the face frame."""
    rw, rh = g.ew * 1.6, g.eh * 2.0
    pw = float(p["frame_round"])
    thick = 0.011
    frame = _rgb(p["frame_rgb"])
    yb = g.ey - rh * 0.25
    sl = _region(cv, -g.a - 0.02, g.ey - rh - 0.03, g.a + 0.02, g.ey + rh + 0.03)
    if sl is None:
        return
    X, Y = cv.X[sl], cv.Y[sl] - g.ey
    ax = np.abs(X)
    qx = np.abs(ax - g.ex) * (1.0 / rw)
    qy = np.abs(Y) * (1.0 / rh)
    rim = ((qx ** pw + qy ** pw) ** (1.0 / pw) - 1.0) * min(rw, rh)
    _paint(cv, sl, 0.12 * _cov(cv, rim), _rgb([0.85, 0.92, 1.0]), None)
    d = np.abs(rim) - thick
    inner = g.ex - rw * 0.95
    bridge = np.maximum(np.abs(Y + g.ey - yb) - thick * 0.8, ax - inner)
    outer = g.ex + rw * 0.95
    arm = np.maximum(np.abs(Y + g.ey - yb) - thick * 0.8, np.maximum(outer - ax, ax - g.a * 1.02))
    d = np.minimum(d, np.minimum(bridge, arm))
    _paint(cv, sl, _cov(cv, d), frame, "glasses")


# --------------------------------------------------------------------------
# public rendering API


def _downscale(a: np.ndarray, k: int) -> np.ndarray:
    """Box filter of the last two axes by an integer factor (exact area averaging).

    Rows are summed first (contiguous adds), which is much faster than ``mean(axis=(1, 3))``.
    """
    if k == 1:
        return a
    lead, big = a.shape[:-2], a.shape[-1]
    n = big // k
    rows = a.reshape(*lead, n, k, big).sum(axis=-2)
    return rows.reshape(*lead, n, n, k).sum(axis=-1) * (1.0 / (k * k))


def render_params(
    params: dict[str, Any], size: int = 64, supersample: int = 4, return_masks: bool = False
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw one portrait; optional per-class coverage masks (float32, sum to 1)."""
    if size < 8 or supersample < 1:
        raise ValueError("size must be >= 8 and supersample >= 1")
    p = params
    cv = _make_canvas(p, size * supersample, return_masks)
    g = _geom(p)
    light = _light(p)
    _draw_background(cv, p)
    _draw_clothing(cv, p, g, light)
    _draw_back_hair(cv, p, g, light)
    _draw_neck(cv, p, g)
    _draw_ears(cv, p, g)
    _draw_face(cv, p, g, light)
    _draw_blush(cv, p, g)
    _draw_nose(cv, p, g, light)
    _draw_mouth(cv, p, g)
    for ex in (-g.ex, g.ex):
        _draw_eye(cv, p, g, ex)
        _draw_brow(cv, p, g, ex)
    _draw_cap(cv, p, g, light)
    if p["glasses"]:
        _draw_glasses(cv, p, g)
    img = _downscale(cv.img, supersample).transpose(1, 2, 0)
    out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if not return_masks:
        return out
    assert cv.masks is not None
    masks = {k: np.clip(_downscale(m, supersample), 0.0, 1.0).astype(np.float32) for k, m in cv.masks.items()}
    return out, masks


def _to255(rgb: Any) -> list[int]:
    return [int(round(float(c) * 255.0)) for c in rgb]


def labels_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-serialisable attribute labels of a parameter dict."""
    p = params
    return {
        "skin_tone": float(p["skin_tone"]),
        "hair_color": str(p["hair_color"]),
        "hair_rgb": _to255(p["hair_rgb"]),
        "hair_dyed": bool(p["hair_dyed"]),
        "hair_length": float(p["hair_length"]),
        "bangs": bool(p["bangs"]),
        "eye_color": str(p["eye_color"]),
        "smile": float(p["smile"]),
        "glasses": bool(p["glasses"]),
        "background": _to255(p["bg_top"]),
        "clothing": _to255(p["clothing_rgb"]),
        "pose": {
            "dx": float(p["dx"]),
            "dy": float(p["dy"]),
            "scale": float(p["scale"]),
            "tilt_deg": float(p["tilt_deg"]),
        },
        "light": float(p["light_deg"]),
    }


def render(seed: int, size: int = 64, supersample: int = 4, return_masks: bool = False):
    """Portrait number ``seed`` as a PIL image plus its labels (and masks if asked)."""
    p = params_from_seed(int(seed))
    labels = labels_from_params(p)
    labels["seed"] = int(seed)
    if return_masks:
        arr, masks = render_params(p, size, supersample, True)
        return Image.fromarray(arr, "RGB"), labels, masks
    arr = render_params(p, size, supersample, False)
    return Image.fromarray(arr, "RGB"), labels
