"""The item's dominant colours, named from a catalogue palette. Pure numpy on what preprocessing made.

Shoppers filter by colour first, and the model sees grey only; but `ml.preprocess` has already
found the background and the item in the photo's own colours. `dominant_colours` takes the
working image the decoder produced (about 112-224 px on the short side, the same pixels the grey
28 x 28 comes from) and preprocessing's geometry, and returns up to three `Colour`s
(name, hex, share), largest share first.

Palette: 16 names, the colour facets a fashion catalogue shows. Each name has one to five
reference colours (sRGB), so that a name covers its light, dark and saturated forms (sky blue
and royal blue are "blue", charcoal and silver are "grey"); a pixel gets the name of the nearest
reference colour. The first reference is the name's typical colour.

    black     #1e1e1e #000000
    grey      #8a8a8a #5a5a5a #bcbcbc
    white     #f8f8f8 #ffffff
    beige     #d9c7a7 #f3e9cf #c8ad7f
    brown     #6f4a2f #94571f #4a3222
    burgundy  #7a1f35 #7d1418
    red       #c62828 #e8202a
    orange    #ee7b22 #ffa01e
    yellow    #f2d024 #f5e27a
    olive     #6f7a2e #4b5320 #a8a45c
    green     #2e8b46 #1f5e2e #7ccf6a #20c040
    teal      #1f8a8a #40c4c4 #0f4f57
    blue      #2f6fd6 #1a3cf0 #8ab8e6 #4a7fb0 #b0d4ec
    navy      #1f2b5e #0a0a78 #1c1c6a
    purple    #6b3fa0 #4b1a7a #b48ad8 #8e2f9e
    pink      #f2a7c3 #ff5aa5 #e0409a #ffc8d6

Distance: CIE76, the Euclidean distance in CIELAB (sRGB, D65 white). Plain CIELAB puts pure and
navy blue nearer a single purple than a single blue (its blue hues bend): the extra references
fix that, and the names of 103 of 108 CSS/X11 colours agree with a person's (the rest are
borderline: tomato is red, lavender white, magenta purple, blue-violet blue, a dark olive brown).

Which pixels count, and with what colour:

1. The background never counts: only pixels inside preprocessing's trimmed box whose grey
   level lies beyond its tolerance from the background level can count (its background mask;
   the grey had transparent areas flattened onto white, and so has every colour pixel read
   here, so they are background too).
2. Un-mixing. An item's pixel is often a mix of the item's colour and the background's: soft
   edges, thin or see-through parts, every edge pixel at the working scale (and, in the
   photo-like renders, the item's whole intensity). Mixed with white, red is pink and navy is
   blue. With b the background colour (the corner patches' median, as preprocessing's level)
   and the item's full strength (preprocessing's peak: the largest grey distance from the
   background), a pixel p has strength v = its luma distance from b / that peak (luma is
   linear in the mix), and its colour at full strength is b + (p - b) / v. Pixels under
   FULL_STRENGTH (half) are too faint to un-mix and do not count. Without un-mixing the top
   colour of photo-like renders is right for 66% of items; with it, 97.5% (docs/colour.md).
3. One colour or several. When the un-mixed colours lie within SPREAD of their mean, the item
   is one colour: their mean, named, share 1.0. Otherwise every un-mixed pixel is named; the
   top name's pixels and every pixel within MERGE of their mean are the top colour (so that a
   colour near the border of two names is not split); up to two more names follow if they have
   MIN_SHARE of the counted pixels. Each colour is then un-mixed to its own full strength (its
   strongest pixel), not the item's: a red part of a navy item is less strong than the navy,
   and un-mixed by the navy's strength it would come out too dark. A colour's hex is the mean
   of its pixels so un-mixed, its name the nearest to that mean, its share of the counted
   pixels.

What it cannot see: a part much lighter than the item's darkest part (on a light background;
a pale body with dark trim) is too faint to count, and is not named; a part the colour of the
background (a white logo on a white background) is background.

A greyscale source (grey, grey+alpha, 1-bit or 16-bit grey modes; or an item and background
whose pixels are all exactly grey, as a grey picture saved as RGB, or encoded as a colour JPEG,
decodes) has no colour: an empty tuple, not "grey". A colour photo of a black, grey or white item
is named as such.

`low_contrast` is set when the top colour lies within LOW_CONTRAST of the background colour (a
white item on a white background, say): the name is the item's, but a person may want a look.

Cost: about 20 numpy calls on at most MAX_SAMPLES pixels for a one-colour item (~65 us on a
2-core Xeon with warm caches, about twice that in the photo path), in numpy's fast forms: the
pixels gathered as one 32-bit word each and held as 3 x n planes, so that numpy's inner loops
run along the pixels and not along three channels (together 2-4x faster than n x 3 in bytes).
Names come from lookup tables from 6-bit-per-channel RGB to the nearest name and to CIELAB
(3.4 MB, built on the first call in a process, ~0.25 s). See docs/colour.md for its share of the
photo path.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from functools import lru_cache

import numpy as np

PALETTE: dict[str, tuple[str, ...]] = {
    "black": ("#1e1e1e", "#000000"),
    "grey": ("#8a8a8a", "#5a5a5a", "#bcbcbc"),
    "white": ("#f8f8f8", "#ffffff"),
    "beige": ("#d9c7a7", "#f3e9cf", "#c8ad7f"),
    "brown": ("#6f4a2f", "#94571f", "#4a3222"),
    "burgundy": ("#7a1f35", "#7d1418"),
    "red": ("#c62828", "#e8202a"),
    "orange": ("#ee7b22", "#ffa01e"),
    "yellow": ("#f2d024", "#f5e27a"),
    "olive": ("#6f7a2e", "#4b5320", "#a8a45c"),
    "green": ("#2e8b46", "#1f5e2e", "#7ccf6a", "#20c040"),
    "teal": ("#1f8a8a", "#40c4c4", "#0f4f57"),
    "blue": ("#2f6fd6", "#1a3cf0", "#8ab8e6", "#4a7fb0", "#b0d4ec"),
    "navy": ("#1f2b5e", "#0a0a78", "#1c1c6a"),
    "purple": ("#6b3fa0", "#4b1a7a", "#b48ad8", "#8e2f9e"),
    "pink": ("#f2a7c3", "#ff5aa5", "#e0409a", "#ffc8d6"),
}
NAMES: tuple[str, ...] = tuple(PALETTE)

FULL_STRENGTH = 0.5  # pixels at >= this share of the item's full strength count (see the docstring)
SPREAD = 24.0  # un-mixed colours within this RMS distance (RGB levels) of their mean: one colour
MERGE = 20.0  # CIE76 radius around the top colour's mean that counts as the top colour
MIN_SHARE = 0.08  # second and third colours need at least this share of the counted pixels
MAX_COLOURS = 3
LOW_CONTRAST = 12.0  # CIE76: top colour this close to the background colour -> low_contrast
MAX_SAMPLES = 800  # pixels of the trimmed box looked at, at most (a regular subsample)
_BITS = 6  # lookup-table precision per channel
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as the grey image
_CHROMA = np.array([[1, 0], [-1, 1], [0, -1]], dtype=np.float32)  # (R - G, G - B): both 0 when grey


@dataclass(frozen=True)
class Colour:
    """One of the item's colours: a palette name, the colour's mean as #rrggbb, its share."""

    name: str
    hex: str
    share: float


@dataclass(frozen=True)
class Geometry:
    """What preprocessing found on the working grey image: background level, trim tolerance, box."""

    background: int
    tolerance: int
    box: tuple[int, int, int, int]  # left, top, right, bottom
    peak: int = 0  # the largest distance of a pixel from the background level (grey levels)
    darker: bool = True  # that pixel is darker than the background (the item on a light one)


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    v = value.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def rgb_to_hex(rgb) -> str:
    r, g, b = (min(255, max(0, round(float(c)))) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


_M = np.array([[0.4124564, 0.3575761, 0.1804375],
               [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB (0-255, any shape (..., 3)) -> CIELAB (D65), float64."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (lin @ _M.T) / _WHITE
    d = 6 / 29
    f = np.where(t > d ** 3, np.cbrt(t), t / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


# every reference colour, in CIELAB, and the index in NAMES of its name
REFERENCE_LAB = srgb_to_lab([hex_to_rgb(h) for refs in PALETTE.values() for h in refs])
REFERENCE_NAME = np.array([i for i, refs in enumerate(PALETTE.values()) for _ in refs], dtype=np.uint8)


def _nearest(lab: np.ndarray) -> np.ndarray:
    """Index in NAMES of the nearest reference colour, for each CIELAB row of `lab` (n x 3)."""
    # |x - r|^2 = |x|^2 - 2 x.r + |r|^2; |x|^2 is the same for every r
    score = (REFERENCE_LAB ** 2).sum(axis=1)[None, :] - 2 * lab @ REFERENCE_LAB.T
    return REFERENCE_NAME[np.argmin(score, axis=1)]


def nearest_name(rgb) -> str:
    """The palette name nearest (CIE76) to one sRGB colour: what "right" means for a known colour."""
    return NAMES[int(_nearest(srgb_to_lab(rgb).reshape(1, 3))[0])]


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CIELAB float32 [n, 3], nearest palette index uint8 [n], |CIELAB|^2 float32 [n]) for every
    6-bit-per-channel RGB."""
    levels = (np.arange(1 << _BITS) << (8 - _BITS)) + (1 << (7 - _BITS))  # bin centres: 2, 6, ..., 254
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    names = np.concatenate([_nearest(part) for part in np.array_split(lab, 8)])
    return lab.astype(np.float32), names, (lab ** 2).sum(axis=1).astype(np.float32)


def warm_up() -> None:
    """Build the lookup tables now (~0.25 s, 3.4 MB), e.g. when a worker process starts, so that
    its first job with colours does not pay for them."""
    _tables()


_INDEX_WEIGHTS = np.array([1 << (2 * _BITS), 1 << _BITS, 1], dtype=np.int32)


def _index(rgb: np.ndarray) -> np.ndarray:
    """Row of the lookup tables for each colour of an n x 3 array (0-255, any number type)."""
    return (rgb.astype(np.int32) >> (8 - _BITS)) @ _INDEX_WEIGHTS


def _planar(picked: np.ndarray, alpha: bool) -> np.ndarray:
    """n x C uint8 pixels -> 3 x n float32 RGB, channel by channel (numpy's loops run along the n
    pixels, not along 3 channels); RGBA (straight alpha) flattened onto white, as the grey is."""
    px = picked.T.astype(np.float32, order="C")
    if not alpha:
        return px[:3]
    a = px[3] * np.float32(1 / 255)
    return px[:3] * a + 255 * (1 - a)


def _pick(view: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The pixels of `view` (H x W x C uint8, any strides) where `mask` (H x W) is set: n x C.

    Four channels are picked as one 32-bit word a pixel, which numpy gathers several times faster
    than 4 bytes along a third axis (~9 against ~40 us for 600 pixels)."""
    if view.shape[2] == 4:
        try:
            return view.view(np.uint32)[..., 0][mask].view(np.uint8).reshape(-1, 4)
        except ValueError:  # channels not contiguous in memory: cannot be read as one word
            pass
    return view[mask]


def _corner_colour(rgb: np.ndarray, alpha: bool, k: int = 3) -> np.ndarray:
    """Median (per channel) of the four corner patches' mean colours, as preprocessing's level."""
    h, w = rgb.shape[:2]
    k = max(1, min(k, w // 4, h // 4))
    patches = np.concatenate((rgb[:k, :k], rgb[:k, -k:], rgb[-k:, :k], rgb[-k:, -k:])).reshape(-1, rgb.shape[2])
    means = np.add.reduce(_planar(patches, alpha).reshape(3, 4, k * k), axis=2)
    means.sort(axis=1)
    return (means[:, 1] + means[:, 2]) * np.float32(0.5 / (k * k))


def _close(a: list[float], b: list[float], radius: float) -> bool:
    """CIE76 distance of two sRGB colours (0-255 floats) under `radius`, through the lookup table."""
    lab = _tables()[0][[_row(a), _row(b)]]
    d = lab[0] - lab[1]
    return float(d @ d) < radius * radius


@dataclass(frozen=True)
class ColourResult:
    colours: tuple[Colour, ...]
    low_contrast: bool = False


NO_COLOUR = ColourResult(())


def _row(rgb) -> int:
    """Lookup-table row of one colour (0-255 floats)."""
    r, g, b = (min(255, max(0, int(c))) >> (8 - _BITS) for c in rgb)
    return (r << (2 * _BITS)) | (g << _BITS) | b


def dominant_colours(gray: np.ndarray, rgb: np.ndarray | None, geometry: Geometry, alpha: bool = False) -> ColourResult:
    """Up to MAX_COLOURS colours of the item in `rgb`, background excluded with `gray`'s geometry.

    `gray` is the working grey image preprocessing trimmed (H x W uint8); `rgb` the colour pixels
    on the same grid (H x W x 3, or x 4: RGBX; RGBA when `alpha`, flattened onto white here), any
    strides (a view of the decoder's output: only the pixels looked at are read), or None for a
    greyscale source. About 20 numpy calls on at most MAX_SAMPLES pixels for a one-colour item,
    about 40 for several colours.
    """
    if rgb is None:
        return NO_COLOUR
    h, w = min(gray.shape[0], rgb.shape[0]), min(gray.shape[1], rgb.shape[1])
    left, top, right, bottom = geometry.box
    right, bottom = min(w, right), min(h, bottom)
    if right - left < 1 or bottom - top < 1:
        return NO_COLOUR
    bg_level, peak = geometry.background, float(geometry.peak)
    # counted: at least FULL_STRENGTH of the item's full strength, and beyond preprocessing's
    # tolerance (its background mask): the background never counts
    threshold = max(FULL_STRENGTH * peak, geometry.tolerance + 0.5)
    step = max(1, math.ceil(math.sqrt((right - left) * (bottom - top) / MAX_SAMPLES)))
    while True:
        g = gray[top:bottom:step, left:right:step]
        counted = g <= bg_level - threshold if geometry.darker else g >= bg_level + threshold
        n = int(np.count_nonzero(counted))
        if n >= 3 or step == 1:  # a thin item may need every pixel
            break
        step = 1
    if n < 3:
        return NO_COLOUR
    pixels = _planar(_pick(rgb[top:bottom:step, left:right:step], counted), alpha)  # 3 x n
    # strength: the grey (luma) distance from the background, linear in the mix; un-mixing scales
    # it to the item's full strength (the peak): at most 2x, as pixels under half strength are out
    distance = np.abs(np.subtract(g[counted], bg_level, dtype=np.float32))
    bg = _corner_colour(rgb[:h, :w], alpha)
    bg_list = bg.tolist()
    if bg_list[0] == bg_list[1] == bg_list[2] and not (pixels[:2] != pixels[1:]).any():
        return NO_COLOUR  # a grey picture: the item and the background exactly grey
    # un-mix: the colour each counted pixel would have at full strength is bg + (pixel - bg) / v
    unmixed = (pixels - bg[:, None]) * np.maximum(np.divide(peak, distance), 1)
    mean = (np.add.reduce(unmixed, axis=1) * np.float32(1 / n)).tolist()
    spread = float(np.vdot(unmixed, unmixed)) / n - sum(m * m for m in mean)
    if spread <= SPREAD * SPREAD:  # one colour: the mean of the un-mixed pixels is the item's
        colour = [min(255.0, max(0.0, m + b)) for m, b in zip(mean, bg_list)]
        name = NAMES[int(_tables()[1][_row(colour)])]
        return ColourResult((Colour(name, rgb_to_hex(colour), 1.0),), _close(colour, bg_list, LOW_CONTRAST))
    lab_table, name_table, square_table = _tables()
    unmixed = unmixed.T  # n x 3 from here: the several-colours path, rarer
    full = np.minimum(np.maximum(unmixed + bg, 0), 255)
    idx = _index(full)
    names = name_table[idx]
    counts = np.bincount(names, minlength=len(NAMES))
    order = np.argsort(-counts, kind="stable")[:MAX_COLOURS].tolist()
    # the top colour: its pixels and every counted pixel within MERGE of their mean, so that one
    # colour near the border between two names is not split between them
    lab = lab_table[idx]
    centre = (names == order[0]).astype(np.float32) @ lab / counts[order[0]]
    near = square_table[idx] - 2 * (lab @ centre) <= MERGE * MERGE - float(centre @ centre)
    groups = [near] + [(names == i) & ~near for i in order[1:] if counts[i] >= MIN_SHARE * n]
    found: dict[str, list[float]] = {}  # name -> [share, r, g, b] (a share-weighted sum)
    for rank, group in enumerate(groups):
        size = int(group.sum())
        if size == 0 or (rank > 0 and size < MIN_SHARE * n):
            continue
        # each colour at its own full strength: un-mixed by the whole item's peak, a colour
        # lighter than the item's strongest would come out too dark and saturated
        own_peak = float(distance[group].max())
        mean = (group.astype(np.float32) @ unmixed / size) * min(1.0, own_peak / peak) + bg
        mean = [min(255.0, max(0.0, v)) for v in mean.tolist()]
        name = NAMES[int(name_table[_row(mean)])]  # named by its mean
        acc = found.setdefault(name, [0.0, 0.0, 0.0, 0.0])
        acc[0] += size / n
        for c in range(3):
            acc[c + 1] += mean[c] * size / n
    colours = sorted((Colour(name, rgb_to_hex([v / a[0] for v in a[1:]]), round(a[0], 3))
                      for name, a in found.items()), key=lambda c: -c.share)[:MAX_COLOURS]
    top = [v / found[colours[0].name][0] for v in found[colours[0].name][1:]]
    return ColourResult(tuple(colours), _close(top, bg_list, LOW_CONTRAST))
