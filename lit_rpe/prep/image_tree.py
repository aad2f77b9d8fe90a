"""Finding the labelled images of an ImageNet-style or class-per-folder tree.

Layouts understood (class = folder name; indices = position in the sorted class names, the
ImageNet / DiT / torchvision ImageFolder convention):

- ``root/train/<class>/*`` and optionally ``root/val/<class>/*``;
- ``root/train/<class>/*`` and a flat ``root/val/*`` with a label file (``val_labels``):
  Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``, class = first word),
  ``<file or stem> <class>`` per line (space, tab or comma), or one class per line in sorted
  file-name order;
- ``root/<class>/*`` (any class-per-folder tree): one split, ``train``, optionally with a
  held-out fraction as ``val``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm"}

# (relative path, class name)
Entry = tuple[str, str]


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def class_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of ``root`` (hidden ones excluded)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_tree(root: Path, base: Path) -> list[Entry]:
    """Every image in ``root/<class>/``, as paths relative to ``base``."""
    entries = []
    for name in class_folders(root):
        entries += [(p.relative_to(base).as_posix(), name) for p in _images_in(root / name)]
    return entries


def read_label_file(path: Path, files: list[Path]) -> dict[str, str]:
    """Map each of ``files`` (flat validation images) to its class name using ``path``."""
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and any(c.strip() for c in r)]
    if rows and [c.strip() for c in rows[0][:2]] == ["ImageId", "PredictionString"]:
        pairs = [(r[0].strip(), r[1].split()[0]) for r in rows[1:]]
    else:
        words = [w for r in rows for w in [" ".join(r).replace(",", " ").split()]]
        if all(len(w) >= 2 for w in words):
            pairs = [(w[0], w[1]) for w in words]
        elif all(len(w) == 1 for w in words):
            if any(w[0].isdigit() for w in words):
                raise ValueError(
                    f"{path}: integer labels are ambiguous (ILSVRC2012_validation_ground_truth.txt "
                    "counts devkit ids, not sorted-wnid indices); give LOC_val_solution.csv or "
                    "'<file> <class name>' lines"
                )
            if len(words) != len(files):
                raise ValueError(f"{path}: {len(words)} labels for {len(files)} images")
            pairs = [(f.name, w[0]) for f, w in zip(files, words, strict=True)]
        else:
            raise ValueError(f"{path}: mixes lines with one and with several fields")
    by_name = {}
    for name, label in pairs:
        by_name[Path(name).name] = label
        by_name[Path(name).stem] = label
    return by_name


def discover(
    src: str | os.PathLike,
    val_labels: str | os.PathLike | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> tuple[list[str], dict[str, list[Entry]]]:
    """Sorted class names and the ``{split: [(relative path, class name)]}`` of a tree.

    Raises ``ValueError`` naming the file or folder for unknown classes, missing labels or a tree
    with no images."""
    root = Path(src).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"image tree {root} does not exist")
    splits: dict[str, list[Entry]] = {}
    if (root / "train").is_dir():
        classes = class_folders(root / "train")
        splits["train"] = scan_class_tree(root / "train", root)
        val = root / "val"
        if val.is_dir() and class_folders(val):
            splits["val"] = scan_class_tree(val, root)
        elif val.is_dir():
            files = _images_in(val)
            if files and val_labels is None:
                raise ValueError(f"{val} holds flat images: pass --val-labels (a label file)")
            labels = read_label_file(Path(val_labels), files) if files else {}
            missing = [f.name for f in files if f.name not in labels and f.stem not in labels]
            if missing:
                raise ValueError(f"no label for {len(missing)} file(s) in {val}, e.g. {missing[0]}")
            splits["val"] = [
                (f.relative_to(root).as_posix(), labels.get(f.name, labels.get(f.stem)))
                for f in files
            ]
    else:
        classes = class_folders(root)
        splits["train"] = scan_class_tree(root, root)
        if val_fraction > 0:
            splits["train"], splits["val"] = _hold_out(splits["train"], val_fraction, seed)
    if not splits["train"]:
        raise ValueError(f"no images found under {root} (expected <class>/ or train/<class>/)")
    unknown = sorted({c for e in splits.get("val", []) for c in [e[1]] if c not in classes})
    if unknown:
        raise ValueError(f"validation classes not among the training classes: {unknown[:5]}")
    return classes, splits


def _hold_out(entries: list[Entry], fraction: float, seed: int) -> tuple[list[Entry], list[Entry]]:
    """Hold out ``fraction`` of every class (at least one image if the class has two)."""
    train, val = [], []
    for index, name in enumerate(sorted({c for _, c in entries})):
        members = [e for e in entries if e[1] == name]
        order = np.random.default_rng([seed, index]).permutation(len(members))
        n_val = min(len(members) - 1, max(1, round(fraction * len(members))))
        val += [members[i] for i in sorted(order[:n_val])]
        train += [members[i] for i in sorted(order[n_val:])]
    return train, val


def sample_keys(entries: list[Entry]) -> list[str]:
    """WebDataset keys: the file stem (``n01440764_10026``) where stems are unique in the split,
    else the relative path without suffix; dots become underscores (the key ends at a dot)."""
    stems = [Path(rel).stem for rel, _ in entries]
    if len(set(stems)) != len(stems):
        stems = [str(Path(rel).with_suffix("")) for rel, _ in entries]
    keys = [s.replace(".", "_") for s in stems]
    if len(set(keys)) != len(keys):
        raise ValueError("two images map to the same sample key; rename one of them")
    return keys
