"""Exact object metrics on images of the shapes data set (``lit_rpe.prep.shapes``); no
pretrained network, pure numpy/scipy.

Every measure starts from the chroma map ``c = (max - min channel) / 255`` in [0, 1]: shapes
data objects have chroma 0.77, backgrounds at most 0.05, so a pixel belongs to an object where
``c > Thresholds.chroma`` (0.4: about half coverage on an anti-aliased edge). Object pixels are
grouped into 8-connected components (``scipy.ndimage.label``). The largest component covering at
least ``Thresholds.min_area`` of the canvas is the image's *main object*; size, centre, class and
edge width describe it.

Fragments against duplicates: a component is *object-sized* when it covers at least
``Thresholds.second_object`` of the data set's smallest object drawn at the image's resolution
(``lit_rpe.prep.shapes.smallest_object_area``): a second object drawn at the training
resolution's pixel size is still one at 2x. Every other object pixel (specks, broken-off pieces)
is *stray*. Each image gets one ``Layout``: ``DUPLICATED`` with two or more object-sized
components; ``CLEAN`` with one and stray pixels below ``Thresholds.stray_share`` of its area;
``FRAGMENTED`` with one and more stray pixels, or with none but object pixels over
``min_area`` (an object in pieces); ``NONE`` otherwise. The thresholds were chosen against
``tests/eval/metrics/data/labelled_layouts`` (about 200 generated images labelled by eye;
docs/evaluation.md gives the agreement).

Per image (``measure_objects``):
- ``count``: object-sized components (the data has exactly one); ``stray``: stray pixels /
  main object pixels; ``layout``: the ``Layout`` code;
- ``rel_size``: sqrt(main object's pixel count) / canvas short side (0.71 of a 2 : 1 bar's
  long side); ``centre``: its centroid as fractions of (width, height);
- ``predicted``: its class: nearest palette hue of its mean colour x the shape whose width /
  height is nearest to the soft width / soft height (see ``classify_component``);
- ``edge_width``: effective width of its outline in pixels, ``C * sum|grad c| / sum|grad c|^2``
  over a band around the outline, C = object minus background chroma. A ramp of width w gives
  w; a Gaussian blur of sigma gives 3.5 sigma; a sharp anti-aliased edge gives 1 to 2
  (1.5 on average over sub-pixel phases).
``summarize`` turns these into the study's numbers (layout fractions, class accuracy,
1-D Wasserstein distance of relative sizes to a reference set, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy import ndimage, stats

from lit_rpe.prep.shapes import COLOURS, SHAPES, class_label, smallest_object_area

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Thresholds:
    """Segmentation settings. ``chroma``: object pixel threshold on (max - min) / 255;
    ``min_area``: smallest main object as a fraction of H * W; ``second_object``: an
    object-sized component covers at least this fraction of the data set's smallest object at
    the image's resolution; ``stray_share``: stray pixels / main object pixels above which one
    object is fragmented; ``band``: half-width in pixels of the band around the outline where
    the edge width is measured."""

    chroma: float = 0.4
    min_area: float = 0.01
    second_object: float = 0.2
    stray_share: float = 0.1
    band: int = 3

    def __post_init__(self):
        fractions = (self.chroma, self.min_area, self.second_object)
        if not all(0 < f < 1 for f in fractions) or self.stray_share < 0 or self.band < 1:
            raise ValueError(
                "need chroma, min_area and second_object in (0, 1), stray_share >= 0 and "
                f"band >= 1: {self}"
            )

    def object_pixels(self, height: int, width: int) -> float:
        """Smallest object-sized component in pixels at (height, width)."""
        return self.second_object * smallest_object_area() * min(height, width) ** 2


class Layout(IntEnum):
    """What an image holds: no object, one clean object, one object in pieces or with stray
    specks, two or more objects."""

    NONE = 0
    CLEAN = 1
    FRAGMENTED = 2
    DUPLICATED = 3


@dataclass(frozen=True)
class ObjectMeasures:
    """Per-image measures of N images (NaN / -1 where an image has no object): ``count`` (N,)
    int64 object-sized components, ``stray`` (N,) float64 stray / main object pixels,
    ``layout`` (N,) int64 ``Layout`` codes, ``rel_size`` (N,) float64, ``centre`` (N, 2)
    float64 (x, y fractions), ``predicted`` (N,) int64 class, ``edge_width`` (N,) float64 px."""

    count: np.ndarray
    stray: np.ndarray
    layout: np.ndarray
    rel_size: np.ndarray
    centre: np.ndarray
    predicted: np.ndarray
    edge_width: np.ndarray

    def __len__(self) -> int:
        return len(self.count)


def check_images(images: np.ndarray) -> np.ndarray:
    """Validate a (N, H, W, 3) uint8 batch (a single (H, W, 3) image becomes N = 1)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}"
        )
    if min(images.shape[1:3]) < 4:
        raise ValueError(f"images of {images.shape[1]} x {images.shape[2]} px are too small")
    return images


def chroma(images: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) float64 in [0, 1]: (max - min channel) / 255."""
    return (images.max(axis=-1).astype(np.float64) - images.min(axis=-1)) / 255.0


def components(image: np.ndarray, thresholds: Thresholds = Thresholds()):
    """Object pixels of one (H, W, 3) uint8 image as 8-connected components: (labels (H, W)
    int, areas (n,) of components 1..n)."""
    mask = chroma(image) > thresholds.chroma
    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    return labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]


def layout_of(
    areas: np.ndarray, height: int, width: int, thresholds: Thresholds = Thresholds()
) -> tuple[Layout, int, float]:
    """(layout, object-sized components, stray share) of an image whose object-pixel
    components have pixel ``areas`` (any order) on a (height, width) canvas."""
    areas = np.sort(np.asarray(areas, dtype=np.float64))[::-1]
    count = int(np.sum(areas >= thresholds.object_pixels(height, width)))
    total = float(areas.sum())
    if count == 0:
        if total >= thresholds.min_area * height * width:
            return Layout.FRAGMENTED, 0, float("inf")
        return Layout.NONE, 0, float("nan")
    stray = (total - areas[0]) / areas[0]
    if count >= 2:
        return Layout.DUPLICATED, count, stray
    return (Layout.CLEAN if stray < thresholds.stray_share else Layout.FRAGMENTED), 1, stray


def _hue_degrees(rgb: np.ndarray) -> float:
    """Hue angle in [0, 360) of a (3,) RGB colour."""
    r, g, b = rgb
    return float(np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) % 360)


def _circular_gap(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def object_chroma(c: np.ndarray, mask: np.ndarray) -> float:
    """An object's own chroma: the 90th percentile of ``c`` over its mask (robust to the
    anti-aliased rim and to noise)."""
    return float(np.percentile(c[mask], 90))


def background_chroma(c: np.ndarray, objects: np.ndarray, margin: int) -> float:
    """Median chroma of the pixels farther than ``margin`` pixels from every object (0 if none)."""
    outside = ~ndimage.binary_dilation(objects, _EIGHT_CONNECTED, iterations=margin)
    return float(np.median(c[outside])) if outside.any() else 0.0


def classify_component(
    image: np.ndarray, c: np.ndarray, mask: np.ndarray, background: float
) -> int:
    """Class of one object: (H, W, 3) uint8 image, its chroma (H, W), the object's mask and the
    background chroma. Colour: the palette hue nearest to the mask's mean colour. Shape: the
    ``SHAPES`` width / height nearest (in log ratio) to soft width / soft height, from coverage
    ``alpha = (c - background) / (object chroma - background)`` clipped to [0, 1] in the mask
    grown by one pixel; soft width = sum over columns of the column's largest alpha (exact for
    an axis-aligned box at any sub-pixel offset)."""
    hue = _hue_degrees(image[mask].mean(axis=0))
    colour = int(np.argmin([_circular_gap(hue, h) for _, h in COLOURS]))
    near = ndimage.binary_dilation(mask, _EIGHT_CONNECTED)
    contrast = max(object_chroma(c, mask) - background, 1e-6)
    alpha = np.where(near, np.clip((c - background) / contrast, 0, 1), 0)
    aspect = np.log(max(alpha.max(axis=0).sum(), 1e-6) / max(alpha.max(axis=1).sum(), 1e-6))
    shape = int(np.argmin([abs(aspect - np.log(ratio)) for _, ratio in SHAPES]))
    return class_label(colour, shape)


def edge_width(
    c: np.ndarray, mask: np.ndarray, others: np.ndarray, background: float, band: int
) -> float:
    """Effective edge width in pixels of the object ``mask`` in the chroma map ``c`` (H, W):
    ``C * sum g / sum g^2`` over the pixels within ``band`` of its outline and not within
    ``band`` of ``others`` (the other objects' mask), g = |forward-difference gradient|,
    C = object chroma - ``background``. NaN for an object without contrast or gradient."""
    grow = ndimage.binary_dilation(mask, _EIGHT_CONNECTED, iterations=band)
    shrink = ndimage.binary_erosion(mask, _EIGHT_CONNECTED, iterations=band)
    near_others = ndimage.binary_dilation(others, _EIGHT_CONNECTED, iterations=band)
    ring = grow & ~shrink & ~near_others
    gx = np.zeros_like(c)
    gy = np.zeros_like(c)
    gx[:, :-1] = np.diff(c, axis=1)
    gy[:-1, :] = np.diff(c, axis=0)
    g = np.hypot(gx, gy)[ring]
    contrast = object_chroma(c, mask) - background
    energy = np.sum(g**2)
    return float(contrast * g.sum() / energy) if energy > 0 and contrast > 0 else float("nan")


def measure_objects(images: np.ndarray, thresholds: Thresholds = Thresholds()) -> ObjectMeasures:
    """Layout, count, size, centre, class and edge width of the main object of every image of a
    (N, H, W, 3) uint8 batch; returns per-image arrays (``ObjectMeasures``)."""
    images = check_images(images)
    n, height, width, _ = images.shape
    count, layout = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    predicted = np.full(n, -1, dtype=np.int64)
    stray, rel_size, edge = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    centre = np.full((n, 2), np.nan)
    for i, image in enumerate(images):
        labels, areas = components(image, thresholds)
        layout[i], count[i], stray[i] = layout_of(areas, height, width, thresholds)
        if not len(areas) or areas.max() < thresholds.min_area * height * width:
            continue
        order = np.argsort(-areas, kind="stable")
        main = labels == order[0] + 1
        others = (labels > 0) & ~main
        c = chroma(image)
        ys, xs = np.nonzero(main)
        rel_size[i] = np.sqrt(main.sum()) / min(height, width)
        centre[i] = ((xs.mean() + 0.5) / width, (ys.mean() + 0.5) / height)
        background = background_chroma(c, labels > 0, thresholds.band)
        predicted[i] = classify_component(image, c, main, background)
        edge[i] = edge_width(c, main, others, background, thresholds.band)
    return ObjectMeasures(count, stray, layout, rel_size, centre, predicted, edge)


def summarize(
    measures: ObjectMeasures, labels: np.ndarray, reference: ObjectMeasures | None = None
) -> dict[str, float]:
    """The study's numbers from per-image measures and the (N,) class labels they were
    generated for. ``clean``, ``fragmented``, ``duplicated``, ``no_object``: fractions of images
    of each ``Layout``; ``clean_correct``: one clean object of the label's class;
    ``mean_count``: object-sized components; ``class_accuracy``: fraction of all images whose
    main object has the label's class (no object counts as wrong); ``colour_accuracy``: the
    same for its colour alone (shape ignored); ``rel_size_mean``; ``edge_width_mean`` (pixels,
    over images with an object); with a ``reference`` (e.g. true renders at the same
    resolution): ``rel_size_w1``, the 1-D Wasserstein distance between the two sets of relative
    sizes, and their reference values."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != measures.count.shape:
        raise ValueError(f"{len(labels)} labels for {len(measures)} measured images")
    correct = measures.predicted == labels
    out = {
        "images": float(len(measures)),
        "clean_correct": float(np.mean((measures.layout == Layout.CLEAN) & correct)),
        "clean": float(np.mean(measures.layout == Layout.CLEAN)),
        "fragmented": float(np.mean(measures.layout == Layout.FRAGMENTED)),
        "duplicated": float(np.mean(measures.layout == Layout.DUPLICATED)),
        "no_object": float(np.mean(measures.layout == Layout.NONE)),
        "mean_count": float(np.mean(measures.count)),
        "class_accuracy": float(np.mean(correct)),
        "colour_accuracy": float(np.mean(_colour(measures.predicted) == _colour(labels))),
        "rel_size_mean": _nanmean(measures.rel_size),
        "edge_width_mean": _nanmean(measures.edge_width),
    }
    if reference is not None:
        sizes, ref_sizes = _finite(measures.rel_size), _finite(reference.rel_size)
        out["rel_size_w1"] = (
            float(stats.wasserstein_distance(sizes, ref_sizes))
            if len(sizes) and len(ref_sizes)
            else float("nan")
        )
        out["ref_rel_size_mean"] = _nanmean(reference.rel_size)
        out["ref_edge_width_mean"] = _nanmean(reference.edge_width)
    return out


def _colour(labels: np.ndarray) -> np.ndarray:
    """Colour index of each class label (``class_parts``); -1 (no object) stays -1."""
    return np.where(labels >= 0, labels // len(SHAPES), -1)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _nanmean(values: np.ndarray) -> float:
    finite = _finite(values)
    return float(finite.mean()) if len(finite) else float("nan")
