"""Exact object metrics on images of the shapes data set (``lit_rpe.prep.shapes``); no
pretrained network, pure numpy/scipy.

Every measure starts from the chroma map ``c = (max - min channel) / 255`` in [0, 1]: shapes
data objects have chroma 0.77, backgrounds at most 0.05, so a pixel belongs to an object where
``c > Thresholds.chroma`` (0.4: about half coverage on an anti-aliased edge). Object pixels are
grouped into 8-connected components (``scipy.ndimage.label``); a component counts as an object
when it covers at least ``Thresholds.min_area`` of the canvas (1 %, a sixth of the smallest
object of the data set; smaller specks are noise). The largest object of an image is its *main
object*; size, centre, class and edge width describe it.

Per image (``measure_objects``):
- ``count``: objects in the image (the data has exactly one);
- ``rel_size``: sqrt(main object's pixel count) / canvas short side (a square's side; a
  triangle's is 0.71 of its box side); ``centre``: its centroid as fractions of (width, height);
- ``predicted``: its class: nearest palette hue of its mean colour x the shape whose box fill
  ratio (soft coverage / soft box, see ``classify_component``) is nearest;
- ``edge_width``: effective width of its outline in pixels, ``C * sum|grad c| / sum|grad c|^2``
  over a band around the outline, C = object minus background chroma. A ramp of width w gives
  w; a Gaussian blur of sigma gives 3.5 sigma; a sharp anti-aliased edge gives 1 to 2
  (1.5 on average over sub-pixel phases).
``summarize`` turns these into the study's numbers (fraction with one object, class accuracy,
1-D Wasserstein distance of relative sizes to a reference set, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

from lit_rpe.prep.shapes import COLOURS, SHAPES, class_label

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Thresholds:
    """Segmentation settings. ``chroma``: object pixel threshold on (max - min) / 255;
    ``min_area``: smallest object as a fraction of H * W; ``band``: half-width in pixels of the
    band around the outline where the edge width is measured."""

    chroma: float = 0.4
    min_area: float = 0.01
    band: int = 3

    def __post_init__(self):
        if not 0 < self.chroma < 1 or not 0 < self.min_area < 1 or self.band < 1:
            raise ValueError(f"need 0 < chroma < 1, 0 < min_area < 1 and band >= 1: {self}")


@dataclass(frozen=True)
class ObjectMeasures:
    """Per-image measures of N images (NaN / -1 where an image has no object): ``count`` (N,)
    int64, ``rel_size`` (N,) float64, ``centre`` (N, 2) float64 (x, y fractions),
    ``predicted`` (N,) int64 class, ``edge_width`` (N,) float64 pixels."""

    count: np.ndarray
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


def segment(image: np.ndarray, thresholds: Thresholds = Thresholds()) -> list[np.ndarray]:
    """The objects of one (H, W, 3) uint8 image: boolean (H, W) masks, largest first."""
    mask = chroma(image) > thresholds.chroma
    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if n == 0:
        return []
    areas = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(areas >= thresholds.min_area * mask.size)
    keep = keep[np.argsort(-areas[keep], kind="stable")]
    return [labels == k + 1 for k in keep]


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
    ``SHAPES`` fill ratio nearest to soft area / (soft width * soft height), from coverage
    ``alpha = (c - background) / (object chroma - background)`` clipped to [0, 1] in the mask
    grown by one pixel; soft width = sum over columns of the column's largest alpha (exact for
    an axis-aligned box at any sub-pixel offset)."""
    hue = _hue_degrees(image[mask].mean(axis=0))
    colour = int(np.argmin([_circular_gap(hue, h) for _, h in COLOURS]))
    near = ndimage.binary_dilation(mask, _EIGHT_CONNECTED)
    contrast = max(object_chroma(c, mask) - background, 1e-6)
    alpha = np.where(near, np.clip((c - background) / contrast, 0, 1), 0)
    fill = alpha.sum() / (alpha.max(axis=0).sum() * alpha.max(axis=1).sum())
    shape = int(np.argmin([abs(fill - ratio) for _, ratio in SHAPES]))
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
    """Count, size, centre, class and edge width of the main object of every image of a
    (N, H, W, 3) uint8 batch; returns per-image arrays (``ObjectMeasures``)."""
    images = check_images(images)
    n, height, width, _ = images.shape
    count = np.zeros(n, dtype=np.int64)
    predicted = np.full(n, -1, dtype=np.int64)
    rel_size, edge = np.full(n, np.nan), np.full(n, np.nan)
    centre = np.full((n, 2), np.nan)
    for i, image in enumerate(images):
        objects = segment(image, thresholds)
        count[i] = len(objects)
        if not objects:
            continue
        main = objects[0]
        others = np.logical_or.reduce(objects[1:]) if len(objects) > 1 else np.zeros_like(main)
        c = chroma(image)
        ys, xs = np.nonzero(main)
        rel_size[i] = np.sqrt(main.sum()) / min(height, width)
        centre[i] = ((xs.mean() + 0.5) / width, (ys.mean() + 0.5) / height)
        background = background_chroma(c, main | others, thresholds.band)
        predicted[i] = classify_component(image, c, main, background)
        edge[i] = edge_width(c, main, others, background, thresholds.band)
    return ObjectMeasures(count, rel_size, centre, predicted, edge)


def summarize(
    measures: ObjectMeasures, labels: np.ndarray, reference: ObjectMeasures | None = None
) -> dict[str, float]:
    """The study's numbers from per-image measures and the (N,) class labels they were
    generated for. ``one_object``: fraction of images with exactly one object; ``no_object``,
    ``several_objects``: with none / two or more; ``mean_count``; ``class_accuracy``: fraction of
    all images whose main object has the label's class (no object counts as wrong);
    ``colour_accuracy``: the same for its colour alone (shape ignored);
    ``rel_size_mean``; ``edge_width_mean`` (pixels, over images with an object); with a
    ``reference`` (e.g. true renders at the same resolution): ``rel_size_w1``, the 1-D
    Wasserstein distance between the two sets of relative sizes, and their reference values."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != measures.count.shape:
        raise ValueError(f"{len(labels)} labels for {len(measures)} measured images")
    out = {
        "images": float(len(measures)),
        "one_object": float(np.mean(measures.count == 1)),
        "no_object": float(np.mean(measures.count == 0)),
        "several_objects": float(np.mean(measures.count >= 2)),
        "mean_count": float(np.mean(measures.count)),
        "class_accuracy": float(np.mean(measures.predicted == labels)),
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
