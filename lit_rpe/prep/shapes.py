"""The shapes data set: one coloured shape on a smooth grey background, drawn at any resolution.

A sample is a *scene*, a small resolution-independent record (``Scene``): the background's
parameters and one object (shape, colour, hue, centre as a fraction of the canvas, size as a
fraction of the canvas's short side). ``render_scene(scene, (H, W))`` draws that scene directly
at any resolution, square or not, so a 16 px and a 64 px image of one scene show the same object
at the same relative place and size; references at 0.5x-2x are true renders, not resampled crops.

Classes are colour x shape (``CLASSES``, 10, sorted names = label order). The colours are five
saturated hues at least 60 degrees apart (chroma 0.77); the two shapes are a *flat* and a *tall*
axis-aligned bar, 2 : 1 and 1 : 2. The first design (a square against a triangle, told apart by
how much of their box they fill) was not learned by the study's 1.3 M-parameter models: their
speckled objects all read as triangles (docs/RESULTS.md before issue 27). Orientation is a
layout property the whole object carries, readable by ``lit_rpe.eval.metrics.object_metrics``
from a speckled blob down to 16 px. Both bars are mirror-symmetric, so the horizontal flip of
training keeps every class. The background is a grey
level plus three low-frequency waves (0.5-1.5 cycles per short side) and a faint constant tint
(chroma <= 0.05), far from every object colour in saturation.

Rendering (units: pixel (i, j) covers [j, j+1] x [i, i+1]): the background is the exact area
average of each wave over the pixel (a sinc factor); the object's coverage is the fraction of
8 x 8 sub-pixel samples inside it; pixel = coverage * colour + (1 - coverage) * background,
rounded to uint8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lit_rpe.resolution import as_height_width

# name and hue in degrees; alphabetical so that the sorted class names follow the labels
COLOURS = (("blue", 240.0), ("green", 120.0), ("magenta", 300.0), ("red", 0.0), ("yellow", 60.0))
# name and the bar's width / height (its long side is the object's size)
SHAPES = (("flat", 2.0), ("tall", 0.5))
CLASSES = tuple(f"{colour}_{shape}" for colour, _ in COLOURS for shape, _ in SHAPES)
SATURATION, VALUE = 0.85, 0.9  # object chroma = max - min channel = 0.765
HUE_JITTER = 6.0  # degrees, uniform +-; neighbouring class hues are 60 degrees apart
SIZE_RANGE = (0.5, 0.75)  # object's long side / canvas short side, uniform
MARGIN = 0.02  # object to canvas edge, as a fraction of the canvas side
SUPERSAMPLE = 8  # coverage samples per pixel and axis


def class_label(colour: int, shape: int) -> int:
    """Label of (colour index, shape index): ``colour * len(SHAPES) + shape``."""
    return colour * len(SHAPES) + shape


def class_parts(label: int) -> tuple[int, int]:
    """(colour index, shape index) of a label; raises for a label outside 0..len(CLASSES)-1."""
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"shapes label must be in [0, {len(CLASSES)}), got {label}")
    return divmod(int(label), len(SHAPES))


@dataclass(frozen=True)
class Wave:
    """One background wave ``amplitude * cos(2 pi (fx x + fy y) + phase)``; (x, y) in canvas
    short sides from the canvas centre, (fx, fy) in cycles per short side."""

    fx: float
    fy: float
    phase: float
    amplitude: float


@dataclass(frozen=True)
class Background:
    """Grey ``level`` in [0, 1] plus ``waves``, plus a constant zero-sum RGB ``tint``."""

    level: float
    tint: tuple[float, float, float]
    waves: tuple[Wave, ...]


@dataclass(frozen=True)
class ShapeObject:
    """One object: ``SHAPES[shape]`` in ``COLOURS[colour]`` drawn with ``hue`` (degrees),
    long side ``size`` (fraction of the canvas short side), centred at (``cx``, ``cy``)
    (fractions of the canvas width and height)."""

    shape: int
    colour: int
    hue: float
    cx: float
    cy: float
    size: float

    def __post_init__(self):
        if not (0 <= self.shape < len(SHAPES) and 0 <= self.colour < len(COLOURS)):
            raise ValueError(f"no shape {self.shape} or colour {self.colour} in the palette")
        if not self.size > 0:
            raise ValueError(f"object size must be positive, got {self.size}")

    @property
    def label(self) -> int:
        return class_label(self.colour, self.shape)


@dataclass(frozen=True)
class Scene:
    """A background and its objects (one in the data set; tests draw 0-3); ``entropy``: the
    seed sequence it was drawn from (provenance only)."""

    background: Background
    objects: tuple[ShapeObject, ...]
    entropy: tuple[int, ...] = ()

    @property
    def label(self) -> int:
        """The class of the scene's single object."""
        if len(self.objects) != 1:
            raise ValueError(f"a labelled scene has one object, this one has {len(self.objects)}")
        return self.objects[0].label

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        """Inverse of ``to_dict`` (a parsed ``{key}.json`` field); raises ``ValueError``."""
        try:
            bg = data["background"]
            background = Background(
                float(bg["level"]),
                tuple(float(t) for t in bg["tint"]),
                tuple(Wave(**{k: float(v) for k, v in w.items()}) for w in bg["waves"]),
            )
            objects = tuple(
                ShapeObject(
                    int(o["shape"]),
                    int(o["colour"]),
                    float(o["hue"]),
                    float(o["cx"]),
                    float(o["cy"]),
                    float(o["size"]),
                )
                for o in data["objects"]
            )
            return cls(background, objects, tuple(int(e) for e in data.get("entropy", ())))
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a shapes scene record: {err!r} in {data!r}") from err


def draw_background(rng: np.random.Generator) -> Background:
    """A random low-frequency, low-saturation background (levels stay inside [0.08, 0.92])."""
    level = rng.uniform(0.3, 0.7)
    waves = []
    for _ in range(3):
        radius, angle = rng.uniform(0.5, 1.5), rng.uniform(0, 2 * math.pi)
        waves.append(
            Wave(
                radius * math.cos(angle),
                radius * math.sin(angle),
                rng.uniform(0, 2 * math.pi),
                rng.uniform(0.02, 0.06),
            )
        )
    strength, angle = rng.uniform(0, 0.03), rng.uniform(0, 2 * math.pi)
    tint = tuple(strength * math.cos(angle - k * 2 * math.pi / 3) for k in range(3))
    return Background(level, tint, tuple(waves))


def draw_object(rng: np.random.Generator, label: int, size: float | None = None) -> ShapeObject:
    """An object of class ``label`` at a random place, fully inside the canvas (with
    ``MARGIN``); ``size`` drawn from ``SIZE_RANGE`` unless given."""
    colour, shape = class_parts(label)
    size = rng.uniform(*SIZE_RANGE) if size is None else float(size)
    if not 0 < size <= 1 - 2 * MARGIN:
        raise ValueError(f"object size must be in (0, {1 - 2 * MARGIN}], got {size}")
    low, high = size / 2 + MARGIN, 1 - size / 2 - MARGIN
    cx, cy = rng.uniform(low, high), rng.uniform(low, high)
    hue = (COLOURS[colour][1] + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 360
    return ShapeObject(shape, colour, hue, cx, cy, size)


def draw_scene(label: int, entropy: Sequence[int]) -> Scene:
    """The scene of class ``label`` seeded by ``entropy`` (e.g. ``[seed, split, label, i]``)."""
    rng = np.random.default_rng(list(entropy))
    return Scene(draw_background(rng), (draw_object(rng, label),), tuple(int(e) for e in entropy))


def hsv_to_rgb(hue: float, saturation: float = SATURATION, value: float = VALUE) -> np.ndarray:
    """(3,) float RGB in [0, 1] of a hue in degrees."""
    k = (np.array([5.0, 3.0, 1.0]) + hue / 60.0) % 6
    return value - value * saturation * np.clip(np.minimum(k, 4 - k), 0, 1)


def background_rgb(background: Background, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float64: each pixel's exact area average of the background."""
    side = min(height, width)
    y = (np.arange(height) + 0.5 - height / 2) / side
    x = (np.arange(width) + 0.5 - width / 2) / side
    grey = np.full((height, width), background.level)
    for w in background.waves:
        # the mean of cos(2 pi f t + p) over a pixel of width 1/side is its centre value times
        # sinc(f / side): exact anti-aliasing at every resolution
        blur = np.sinc(w.fx / side) * np.sinc(w.fy / side)
        phase = 2 * np.pi * (w.fx * x[None, :] + w.fy * y[:, None]) + w.phase
        grey += w.amplitude * blur * np.cos(phase)
    return grey[..., None] + np.asarray(background.tint)


def box_sides(shape: int) -> tuple[float, float]:
    """(width, height) of a shape's bar in units of its long side (the object's ``size``)."""
    aspect = SHAPES[shape][1]
    return min(1.0, aspect), min(1.0, 1.0 / aspect)


def smallest_object_area() -> float:
    """Area of the data set's smallest object, as a fraction of the canvas short side squared."""
    return min(SIZE_RANGE[0] ** 2 * w * h for w, h in map(box_sides, range(len(SHAPES))))


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v), in units of the object's long side from its centre, are inside."""
    width, height = box_sides(shape)
    return (np.abs(u) <= width / 2) & (np.abs(v) <= height / 2)


def object_coverage(
    obj: ShapeObject, height: int, width: int, supersample: int = SUPERSAMPLE
) -> tuple[np.ndarray, int, int]:
    """Coverage in [0, 1] of the pixels under the square of side ``size`` around the object's
    centre: ((h, w) array, top, left)."""
    side_px = obj.size * min(height, width)
    cx, cy = obj.cx * width, obj.cy * height
    left = max(0, math.floor(cx - side_px / 2))
    right = min(width, math.ceil(cx + side_px / 2))
    top = max(0, math.floor(cy - side_px / 2))
    bottom = min(height, math.ceil(cy + side_px / 2))
    offsets = (np.arange(supersample) + 0.5) / supersample
    xs = (np.arange(left, right)[:, None] + offsets).ravel()
    ys = (np.arange(top, bottom)[:, None] + offsets).ravel()
    inside = _inside(obj.shape, (xs[None, :] - cx) / side_px, (ys[:, None] - cy) / side_px)
    rows, cols = bottom - top, right - left
    coverage = inside.reshape(rows, supersample, cols, supersample).mean(axis=(1, 3))
    return coverage, top, left


def render_scene(scene: Scene, resolution: int | Sequence[int]) -> np.ndarray:
    """The scene drawn at ``resolution`` (int or (height, width)): (H, W, 3) uint8."""
    height, width = as_height_width(resolution)
    rgb = background_rgb(scene.background, height, width)
    for obj in scene.objects:
        coverage, top, left = object_coverage(obj, height, width)
        region = rgb[top : top + coverage.shape[0], left : left + coverage.shape[1]]
        region += coverage[..., None] * (hsv_to_rgb(obj.hue) - region)
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def render_scenes(scenes: Sequence[Scene], resolution: int | Sequence[int]) -> np.ndarray:
    """Every scene drawn at ``resolution``: (N, H, W, 3) uint8."""
    height, width = as_height_width(resolution)
    out = np.empty((len(scenes), height, width, 3), dtype=np.uint8)
    for i, scene in enumerate(scenes):
        out[i] = render_scene(scene, (height, width))
    return out
